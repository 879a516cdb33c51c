// DType conversions: every fp16 and bf16 bit pattern round-trips through fp32, fp32 -> fp16/bf16
// rounds to nearest even against a binary-search reference (fresh random floats and every
// tie), overflow, infinities and signed zeros, dtype names, and LoadAsFloat/StoreFromFloat.
#include "cache/kv/dtype.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// A 16-bit float format: its conversions and the bits of +infinity. Positive patterns are
// ordered like their values, and every pattern above `infinity` (sign masked) is a NaN.
struct NarrowFormat {
  const char* name;
  float (*to_float)(uint16_t);
  uint16_t (*from_float)(float);
  uint16_t infinity;
  // Where rounding puts infinity: one ulp past the largest finite value, as if the exponent
  // range went on (IEEE 754 overflow).
  double overflow_value;
};

const NarrowFormat kHalf{"fp16", HalfToFloat, FloatToHalf, 0x7c00, 65536.0};
const NarrowFormat kBFloat16{"bf16", BFloat16ToFloat, FloatToBFloat16, 0x7f80,
                             std::ldexp(1.0, 128)};

std::string Hex(uint32_t bits) { return absl::StrCat("0x", absl::Hex(bits)); }

bool IsNaN(const NarrowFormat& format, uint16_t bits) { return (bits & 0x7fff) > format.infinity; }

uint32_t FloatBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

float FloatFromBits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// The value of a non-negative pattern, with infinity standing for `overflow_value`.
double Magnitude(const NarrowFormat& format, uint16_t bits) {
  return bits == format.infinity ? format.overflow_value : format.to_float(bits);
}

// The correctly rounded pattern for finite `x`: of the two representable magnitudes around |x|
// (found by binary search over the patterns), the nearer; on a tie, the even pattern.
uint16_t ReferenceRound(const NarrowFormat& format, float x) {
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double magnitude = std::fabs(static_cast<double>(x));
  if (magnitude >= format.overflow_value) return sign | format.infinity;
  uint16_t low = 0;                 // Magnitude(low) <= magnitude
  uint16_t high = format.infinity;  // magnitude < Magnitude(high)
  while (high - low > 1) {
    const uint16_t middle = static_cast<uint16_t>((low + high) / 2);
    if (Magnitude(format, middle) <= magnitude) {
      low = middle;
    } else {
      high = middle;
    }
  }
  // Both differences are exact in double: the operands are floats of nearby exponents.
  const double below = magnitude - Magnitude(format, low);
  const double above = Magnitude(format, high) - magnitude;
  const uint16_t nearest = below < above ? low : above < below ? high : (low % 2 == 0 ? low : high);
  return sign | nearest;
}

void ExpectRoundTripsEveryPattern(const NarrowFormat& format) {
  for (uint32_t i = 0; i <= 0xffff; ++i) {
    const uint16_t bits = static_cast<uint16_t>(i);
    const float value = format.to_float(bits);
    const uint16_t back = format.from_float(value);
    if (IsNaN(format, bits)) {
      ASSERT_TRUE(std::isnan(value)) << Hex(bits);
      ASSERT_TRUE(IsNaN(format, back)) << Hex(bits) << " -> " << Hex(back);
    } else {
      ASSERT_EQ(back, bits) << Hex(bits) << " -> " << value << " -> " << Hex(back);
    }
  }
}

// Converts `count` fresh random floats with the given exponent fields and random sign and
// fraction, comparing each with the reference.
void ExpectRoundsLikeReference(const NarrowFormat& format, int min_exponent, int max_exponent,
                               int count) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat(format.name, ", seed ", seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<uint32_t> exponent(min_exponent, max_exponent);
  std::uniform_int_distribution<uint32_t> fraction(0, (1u << 23) - 1);
  for (int i = 0; i < count; ++i) {
    const uint32_t bits =
        (static_cast<uint32_t>(rng() & 1) << 31) | (exponent(rng) << 23) | fraction(rng);
    const float x = FloatFromBits(bits);
    ASSERT_EQ(format.from_float(x), ReferenceRound(format, x)) << x << " (" << Hex(bits) << ")";
  }
}

// At the midpoint of every pair of adjacent non-negative patterns (exact in fp32), and one fp32
// ulp either side, of both signs.
void ExpectTiesRoundToEven(const NarrowFormat& format) {
  for (uint16_t low = 0; low < format.infinity; ++low) {
    const uint16_t high = low + 1;
    const double exact_middle = (Magnitude(format, low) + Magnitude(format, high)) / 2;
    const float middle = static_cast<float>(exact_middle);
    ASSERT_EQ(static_cast<double>(middle), exact_middle) << Hex(low);
    const uint16_t even = low % 2 == 0 ? low : high;
    for (uint16_t sign : {uint16_t{0}, uint16_t{0x8000}}) {
      const float s = sign ? -1.0f : 1.0f;
      ASSERT_EQ(format.from_float(s * middle), sign | even) << Hex(low);
      ASSERT_EQ(format.from_float(s * std::nextafter(middle, 0.0f)), sign | low) << Hex(low);
      ASSERT_EQ(format.from_float(s * std::nextafter(middle, kInf)), sign | high) << Hex(low);
    }
    ASSERT_EQ(ReferenceRound(format, middle), even) << "reference disagrees at " << Hex(low);
  }
}

void ExpectSpecialValuesKept(const NarrowFormat& format) {
  SCOPED_TRACE(format.name);
  EXPECT_EQ(format.from_float(kInf), format.infinity);
  EXPECT_EQ(format.from_float(-kInf), 0x8000 | format.infinity);
  EXPECT_EQ(format.from_float(0.0f), 0x0000);
  EXPECT_EQ(format.from_float(-0.0f), 0x8000);
  EXPECT_TRUE(IsNaN(format, format.from_float(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(IsNaN(format, format.from_float(-std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(IsNaN(format, format.from_float(std::numeric_limits<float>::signaling_NaN())));

  EXPECT_EQ(format.to_float(format.infinity), kInf);
  EXPECT_EQ(format.to_float(0x8000 | format.infinity), -kInf);
  EXPECT_EQ(FloatBits(format.to_float(0x0000)), 0x00000000u);
  EXPECT_EQ(FloatBits(format.to_float(0x8000)), 0x80000000u);
}

// fp16 by definition: 2^(e-15) * 1.f, 2^-14 * 0.f when e == 0, infinity or NaN when e == 31.
double HalfByDefinition(uint16_t bits) {
  const int exponent = (bits >> 10) & 0x1f;
  const int fraction = bits & 0x3ff;
  double magnitude;
  if (exponent == 0x1f) {
    magnitude = fraction == 0 ? std::numeric_limits<double>::infinity()
                              : std::numeric_limits<double>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = std::ldexp(fraction, -24);
  } else {
    magnitude = std::ldexp(1024 + fraction, exponent - 25);
  }
  return (bits & 0x8000) ? -magnitude : magnitude;
}

TEST(DTypeTest, HalfToFloatMatchesDefinitionForEveryPattern) {
  for (uint32_t i = 0; i <= 0xffff; ++i) {
    const uint16_t bits = static_cast<uint16_t>(i);
    const double want = HalfByDefinition(bits);
    const float got = HalfToFloat(bits);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << Hex(bits);
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << Hex(bits);
      ASSERT_EQ(std::signbit(got), std::signbit(want)) << Hex(bits);
    }
  }
}

TEST(DTypeTest, HalfRoundTripsEveryPattern) { ExpectRoundTripsEveryPattern(kHalf); }

TEST(DTypeTest, BFloat16RoundTripsEveryPattern) { ExpectRoundTripsEveryPattern(kBFloat16); }

TEST(DTypeTest, FloatToHalfRoundsToNearestEven) {
  // Biased fp32 exponents 97..144: 2^-30 (below half the smallest subnormal) to 2^17 (past
  // overflow), through every subnormal and normal fp16 binade.
  ExpectRoundsLikeReference(kHalf, 127 - 30, 127 + 17, 1 << 20);
}

TEST(DTypeTest, FloatToBFloat16RoundsToNearestEven) {
  // Every finite fp32 exponent, subnormals included.
  ExpectRoundsLikeReference(kBFloat16, 0, 254, 1 << 20);
}

TEST(DTypeTest, HalfTiesRoundToEven) { ExpectTiesRoundToEven(kHalf); }

TEST(DTypeTest, BFloat16TiesRoundToEven) { ExpectTiesRoundToEven(kBFloat16); }

TEST(DTypeTest, FloatToHalfOverflowsAtAndAbove65520) {
  struct Case {
    float value;
    uint16_t half;
  };
  for (const Case& c : {Case{65504.0f, 0x7bff}, Case{65519.0f, 0x7bff},
                        Case{std::nextafter(65520.0f, 0.0f), 0x7bff}, Case{65520.0f, 0x7c00},
                        Case{65536.0f, 0x7c00}, Case{1e6f, 0x7c00},
                        Case{std::numeric_limits<float>::max(), 0x7c00}}) {
    EXPECT_EQ(FloatToHalf(c.value), c.half) << c.value;
    EXPECT_EQ(FloatToHalf(-c.value), 0x8000 | c.half) << -c.value;
  }
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::max()), 0x7f80);
}

TEST(DTypeTest, InfinitiesSignedZerosAndNaNsKept) {
  ExpectSpecialValuesKept(kHalf);
  ExpectSpecialValuesKept(kBFloat16);
}

TEST(DTypeTest, NamesRoundTripThroughParse) {
  struct Case {
    DType dtype;
    const char* name;
    int size;
  };
  for (const Case& c : {Case{DType::kF32, "fp32", 4}, Case{DType::kF16, "fp16", 2},
                        Case{DType::kBF16, "bf16", 2}}) {
    EXPECT_EQ(DTypeName(c.dtype), c.name);
    EXPECT_EQ(DTypeSize(c.dtype), c.size);
    absl::StatusOr<DType> parsed = ParseDType(c.name);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, c.dtype);
  }
}

TEST(DTypeTest, ParseRejectsUnknownNames) {
  for (const char* name : {"", "fp8", "FP16", "float16", "bfloat16", "bf16 ", "fp32x"}) {
    absl::StatusOr<DType> parsed = ParseDType(name);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(parsed.status().message(),
              absl::StrCat("dtype: expected fp32, fp16 or bf16, got \"", name, "\""));
  }
}

// The bytes of `value` rounded to `dtype`.
std::string Encode(DType dtype, float value) {
  std::string bytes(DTypeSize(dtype), '\0');
  uint16_t narrow = 0;
  switch (dtype) {
    case DType::kF32:
      std::memcpy(bytes.data(), &value, sizeof(value));
      return bytes;
    case DType::kF16:
      narrow = FloatToHalf(value);
      break;
    case DType::kBF16:
      narrow = FloatToBFloat16(value);
      break;
  }
  std::memcpy(bytes.data(), &narrow, sizeof(narrow));
  return bytes;
}

// `value` after rounding to `dtype`.
float Rounded(DType dtype, float value) {
  switch (dtype) {
    case DType::kF32:
      return value;
    case DType::kF16:
      return HalfToFloat(FloatToHalf(value));
    case DType::kBF16:
      return BFloat16ToFloat(FloatToBFloat16(value));
  }
  return 0.0f;
}

TEST(DTypeTest, StoreAndLoadTouchOnlyTheirElement) {
  const std::vector<float> values = {1.0f, -2.5f, 3.14159265f, 1e-6f, 65519.0f, -0.0f, 1e30f};
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(DTypeName(dtype));
    const int size = DTypeSize(dtype);
    // One guard element before and after the stored ones; float storage for alignment.
    constexpr char kGuard = '\xab';
    std::vector<float> storage(values.size() + 2);
    char* buffer = reinterpret_cast<char*>(storage.data());
    std::memset(buffer, kGuard, storage.size() * sizeof(float));
    char* elements = buffer + size;
    for (size_t i = 0; i < values.size(); ++i) StoreFromFloat(dtype, values[i], elements, i);

    const std::string guard(size, kGuard);
    EXPECT_EQ(std::string(buffer, size), guard);
    EXPECT_EQ(std::string(elements + values.size() * size, size), guard);
    for (size_t i = 0; i < values.size(); ++i) {
      SCOPED_TRACE(values[i]);
      EXPECT_EQ(std::string(elements + i * size, size), Encode(dtype, values[i]));
      EXPECT_EQ(FloatBits(LoadAsFloat(dtype, elements, i)), FloatBits(Rounded(dtype, values[i])));
    }
  }
}

TEST(DTypeTest, RowFormsMatchTheElementForms) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 100.0f);
  constexpr int kOffset = 3;
  constexpr int kCount = 37;  // not a multiple of any vector width
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(DTypeName(dtype));
    std::vector<float> values(kCount);
    for (float& value : values) value = normal(rng);
    const float scale = normal(rng);

    // Store: the row form equals StoreFromFloat of each scaled value, and touches no other.
    std::vector<float> row_storage(kOffset + kCount + 1, 7.0f), one_storage(row_storage);
    StoreRowFromFloat(dtype, values.data(), scale, row_storage.data(), kOffset, kCount);
    for (int i = 0; i < kCount; ++i) {
      StoreFromFloat(dtype, values[i] * scale, one_storage.data(), kOffset + i);
    }
    EXPECT_EQ(
        std::memcmp(row_storage.data(), one_storage.data(), row_storage.size() * sizeof(float)), 0);

    // Load: the row form equals LoadAsFloat of each element.
    std::vector<float> loaded(kCount);
    LoadRowAsFloat(dtype, row_storage.data(), kOffset, kCount, loaded.data());
    for (int i = 0; i < kCount; ++i) {
      EXPECT_EQ(FloatBits(loaded[i]),
                FloatBits(LoadAsFloat(dtype, row_storage.data(), kOffset + i)))
          << "element " << i;
    }
  }
}

}  // namespace
}  // namespace kvtier
