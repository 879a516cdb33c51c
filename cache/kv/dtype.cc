#include "cache/kv/dtype.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kvtier {

absl::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "fp32";
    case DType::kF16:
      return "fp16";
    case DType::kBF16:
      return "bf16";
  }
  return "unknown";
}

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    if (name == DTypeName(dtype)) return dtype;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype: expected fp32, fp16 or bf16, got \"", name, "\""));
}

uint16_t FloatToHalf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow
  if (magnitude < 0x38800000u) {
    // Subnormal or zero in fp16: shift the full significand into place, round to nearest even.
    if (magnitude < 0x33000000u) return static_cast<uint16_t>(sign);
    const int exponent = static_cast<int>(magnitude >> 23);
    const uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
    const int shift = 126 - exponent;  // value = significand * 2^(exponent-150) = result * 2^-24
    const uint32_t half_ulp = 1u << (shift - 1);
    uint32_t result = significand >> shift;
    const uint32_t rest = significand & ((1u << shift) - 1);
    if (rest > half_ulp || (rest == half_ulp && (result & 1u))) ++result;
    return static_cast<uint16_t>(sign | result);
  }
  // Normal: rebias the exponent, round the 13 dropped fraction bits to nearest even.
  uint32_t result = magnitude - 0x38000000u;
  result += 0xfffu + ((result >> 13) & 1u);
  return static_cast<uint16_t>(sign | (result >> 13));
}

float HalfToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  uint32_t exponent = (half >> 10) & 0x1fu;
  uint32_t fraction = half & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1fu) {
    bits = sign | 0x7f800000u | (fraction << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (fraction << 13);
  } else if (fraction == 0) {
    bits = sign;
  } else {
    // Subnormal: normalize the fraction.
    exponent = 113;
    while ((fraction & 0x400u) == 0) {
      fraction <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((fraction & 0x3ffu) << 13);
  }
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

float LoadAsFloat(DType dtype, const void* data, int64_t index) {
  switch (dtype) {
    case DType::kF32:
      return static_cast<const float*>(data)[index];
    case DType::kF16:
      return HalfToFloat(static_cast<const uint16_t*>(data)[index]);
    case DType::kBF16:
      return BFloat16ToFloat(static_cast<const uint16_t*>(data)[index]);
  }
  return 0.0f;
}

void StoreFromFloat(DType dtype, float value, void* data, int64_t index) {
  switch (dtype) {
    case DType::kF32:
      static_cast<float*>(data)[index] = value;
      return;
    case DType::kF16:
      static_cast<uint16_t*>(data)[index] = FloatToHalf(value);
      return;
    case DType::kBF16:
      static_cast<uint16_t*>(data)[index] = FloatToBFloat16(value);
      return;
  }
}

void LoadRowAsFloat(DType dtype, const void* data, int64_t index, int count, float* values) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(values, static_cast<const float*>(data) + index, count * sizeof(float));
      return;
    case DType::kF16: {
      const uint16_t* row = static_cast<const uint16_t*>(data) + index;
      for (int i = 0; i < count; ++i) values[i] = HalfToFloat(row[i]);
      return;
    }
    case DType::kBF16: {
      const uint16_t* row = static_cast<const uint16_t*>(data) + index;
      for (int i = 0; i < count; ++i) values[i] = BFloat16ToFloat(row[i]);
      return;
    }
  }
}

void StoreRowFromFloat(DType dtype, const float* values, float scale, void* data, int64_t index,
                       int count) {
  switch (dtype) {
    case DType::kF32: {
      float* row = static_cast<float*>(data) + index;
      for (int i = 0; i < count; ++i) row[i] = values[i] * scale;
      return;
    }
    case DType::kF16: {
      uint16_t* row = static_cast<uint16_t*>(data) + index;
      for (int i = 0; i < count; ++i) row[i] = FloatToHalf(values[i] * scale);
      return;
    }
    case DType::kBF16: {
      uint16_t* row = static_cast<uint16_t*>(data) + index;
      for (int i = 0; i < count; ++i) row[i] = FloatToBFloat16(values[i] * scale);
      return;
    }
  }
}

}  // namespace kvtier
