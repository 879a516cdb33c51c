// DType: the element types K/V, queries and attention outputs travel and rest in, with exact
// scalar conversions between them and fp32.
//
// fp16 is IEEE 754 binary16; bf16 is the upper half of an IEEE binary32. Conversions to the
// narrow types round to nearest even and keep infinities and NaNs; fp16 keeps subnormals.
// Everything here is a pure function and safe to call from any thread.
#ifndef KVTIER_CACHE_KV_DTYPE_H_
#define KVTIER_CACHE_KV_DTYPE_H_

#include <cstdint>
#include <cstring>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvtier {

enum class DType : uint8_t { kF32, kF16, kBF16 };

// Bytes per element.
constexpr int DTypeSize(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

// "fp32", "fp16" or "bf16".
absl::string_view DTypeName(DType dtype);

// Parses the names DTypeName returns; INVALID_ARGUMENT for anything else.
absl::StatusOr<DType> ParseDType(absl::string_view name);

uint16_t FloatToHalf(float value);
float HalfToFloat(uint16_t bits);

inline float BFloat16ToFloat(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof(value));
  return value;
}

inline uint16_t FloatToBFloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// Reads element `index` of a buffer of `dtype` as fp32.
float LoadAsFloat(DType dtype, const void* data, int64_t index);

// Writes `value`, rounded to `dtype`, as element `index` of a buffer of `dtype`.
void StoreFromFloat(DType dtype, float value, void* data, int64_t index);

// Row forms of the two above, with the dtype dispatched once: elements [index, index + count)
// of `data` to fp32, and `count` fp32 values times `scale` rounded into them.
void LoadRowAsFloat(DType dtype, const void* data, int64_t index, int count, float* values);
void StoreRowFromFloat(DType dtype, const float* values, float scale, void* data, int64_t index,
                       int count);

}  // namespace kvtier

#endif  // KVTIER_CACHE_KV_DTYPE_H_
