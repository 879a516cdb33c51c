#include "client/load/distribution.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kvtier {

absl::StatusOr<Distribution> Distribution::Parse(absl::string_view flag, absl::string_view text) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat(flag,
                     ": expected N, const:N, uniform:A:B, lognormal:MEDIAN:SIGMA or exp:MEAN "
                     "(each >= 0, A <= B), got \"",
                     text, "\""));
  };
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  if (parts.size() == 1) parts.insert(parts.begin(), "const");
  std::vector<double> values;
  for (size_t i = 1; i < parts.size(); ++i) {
    double value = 0;
    if (!absl::SimpleAtod(parts[i], &value) || !std::isfinite(value) || value < 0) return bad();
    values.push_back(value);
  }
  const absl::string_view kind = parts[0];
  if (kind == "const" && values.size() == 1) return Distribution(Kind::kConstant, values[0], 0);
  if (kind == "exp" && values.size() == 1) return Distribution(Kind::kExponential, values[0], 0);
  if (kind == "uniform" && values.size() == 2 && values[0] <= values[1]) {
    return Distribution(Kind::kUniform, values[0], values[1]);
  }
  if (kind == "lognormal" && values.size() == 2) {
    return Distribution(Kind::kLognormal, values[0], values[1]);
  }
  return bad();
}

double Distribution::Sample(std::mt19937_64& rng) const {
  switch (kind_) {
    case Kind::kConstant:
      return a_;
    case Kind::kUniform:
      return std::uniform_real_distribution<double>(a_, b_)(rng);
    case Kind::kLognormal:
      return a_ * std::exp(b_ * std::normal_distribution<double>()(rng));
    case Kind::kExponential:
      return a_ == 0 ? 0 : std::exponential_distribution<double>(1 / a_)(rng);
  }
  return a_;
}

int Distribution::SampleCount(std::mt19937_64& rng, int at_least) const {
  const double value = std::round(Sample(rng));
  return std::max(at_least, static_cast<int>(std::min(value, 1e9)));
}

double Distribution::mean() const {
  switch (kind_) {
    case Kind::kUniform:
      return (a_ + b_) / 2;
    case Kind::kLognormal:
      return a_ * std::exp(b_ * b_ / 2);
    case Kind::kConstant:
    case Kind::kExponential:
      break;
  }
  return a_;
}

std::string Distribution::ToString() const {
  switch (kind_) {
    case Kind::kUniform:
      return absl::StrCat("uniform:", a_, ":", b_);
    case Kind::kLognormal:
      return absl::StrCat("lognormal:", a_, ":", b_);
    case Kind::kExponential:
      return absl::StrCat("exp:", a_);
    case Kind::kConstant:
      break;
  }
  return absl::StrCat("const:", a_);
}

}  // namespace kvtier
