// Distribution: how a workload draws a length (tokens) or a duration (milliseconds), as a flag
// gives it:
//   N or const:N             always N
//   uniform:A:B              uniform over [A, B]
//   lognormal:MEDIAN:SIGMA   exp(N(ln MEDIAN, SIGMA^2))
//   exp:MEAN                 exponential with mean MEAN (think times, inter-arrival gaps)
// Samples come from a caller's generator, so a seeded workload draws the same values on every
// run.
//
// Immutable after Parse; Sample is const and thread-safe given a generator per thread.
#ifndef KVTIER_CLIENT_LOAD_DISTRIBUTION_H_
#define KVTIER_CLIENT_LOAD_DISTRIBUTION_H_

#include <random>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvtier {

class Distribution {
 public:
  enum class Kind { kConstant, kUniform, kLognormal, kExponential };

  // Parses `text` for the flag named `flag` (which errors name). Every parameter must be >= 0
  // (the bounds of uniform ordered, SIGMA finite); INVALID_ARGUMENT otherwise:
  // "--prompt_tokens: expected const:N, uniform:A:B, lognormal:MEDIAN:SIGMA or exp:MEAN, got
  // \"uniform:9\"".
  static absl::StatusOr<Distribution> Parse(absl::string_view flag, absl::string_view text);
  static Distribution Constant(double value) { return Distribution(Kind::kConstant, value, 0); }

  double Sample(std::mt19937_64& rng) const;
  // Sample rounded to the nearest integer, at least `at_least`.
  int SampleCount(std::mt19937_64& rng, int at_least) const;

  Kind kind() const { return kind_; }
  double mean() const;
  // As Parse reads it: "const:16", "lognormal:200:0.5".
  std::string ToString() const;

 private:
  Distribution(Kind kind, double a, double b) : kind_(kind), a_(a), b_(b) {}

  Kind kind_;
  double a_;  // const N, uniform A, lognormal MEDIAN, exp MEAN
  double b_;  // uniform B, lognormal SIGMA
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_DISTRIBUTION_H_
