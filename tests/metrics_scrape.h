// Test support: scrapes a kvtier process's /metrics over HTTP, as Prometheus does, and reads
// the samples of the text format back (names, labels, values; HELP, TYPE and comments are
// skipped).
#ifndef KVTIER_TESTS_METRICS_SCRAPE_H_
#define KVTIER_TESTS_METRICS_SCRAPE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier::test {

struct MetricSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// GET http://127.0.0.1:`port`/metrics: the body, or UNAVAILABLE saying what went wrong.
absl::StatusOr<std::string> ScrapeText(int port);

// The samples of a text-format exposition; INVALID_ARGUMENT naming a line it cannot read.
absl::StatusOr<std::vector<MetricSample>> ParseSamples(const std::string& text);

// ScrapeText, then ParseSamples.
absl::StatusOr<std::vector<MetricSample>> Scrape(int port);

// The sum of the values of the samples named `name` whose labels include all of `labels`.
double Sum(const std::vector<MetricSample>& samples, const std::string& name,
           const std::map<std::string, std::string>& labels = {});

// How many samples are named `name`.
int Count(const std::vector<MetricSample>& samples, const std::string& name);

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_METRICS_SCRAPE_H_
