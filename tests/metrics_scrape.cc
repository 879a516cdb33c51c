#include "tests/metrics_scrape.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace kvtier::test {
namespace {

// `error`: the errno of the failed call, taken before close() may change it.
absl::Status Unavailable(int port, absl::string_view what, int error) {
  return absl::UnavailableError(
      absl::StrCat("GET http://127.0.0.1:", port, "/metrics: ", what, ": ", strerror(error)));
}

// `labels` is the text between the braces: name="value",... (values escape \, " and \n).
absl::Status ParseLabels(absl::string_view labels, std::map<std::string, std::string>& out) {
  while (!labels.empty()) {
    const size_t equals = labels.find("=\"");
    if (equals == absl::string_view::npos) return absl::InvalidArgumentError("no =\"");
    const std::string name(labels.substr(0, equals));
    std::string value;
    size_t i = equals + 2;
    for (; i < labels.size() && labels[i] != '"'; ++i) {
      if (labels[i] == '\\' && i + 1 < labels.size()) {
        ++i;
        value.push_back(labels[i] == 'n' ? '\n' : labels[i]);
      } else {
        value.push_back(labels[i]);
      }
    }
    if (i == labels.size()) return absl::InvalidArgumentError("unterminated label value");
    out[name] = value;
    labels.remove_prefix(i + 1);
    if (absl::StartsWith(labels, ",")) labels.remove_prefix(1);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ScrapeText(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return Unavailable(port, "socket", errno);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    const int error = errno;
    close(fd);
    return Unavailable(port, "connect", error);
  }
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    const int error = errno;
    close(fd);
    return Unavailable(port, "write", error);
  }
  char buffer[1 << 16];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) response.append(buffer, n);
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (!absl::StartsWith(response, "HTTP/1.1 200") || body == std::string::npos) {
    return absl::UnavailableError(absl::StrCat(
        "GET http://127.0.0.1:", port, "/metrics: unexpected response: ", response.substr(0, 200)));
  }
  return response.substr(body + 4);
}

absl::StatusOr<std::vector<MetricSample>> ParseSamples(const std::string& text) {
  std::vector<MetricSample> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    MetricSample sample;
    const size_t space = line.rfind(' ');
    const size_t brace = line.find('{');
    absl::string_view series = line.substr(0, space);
    if (space == absl::string_view::npos ||
        !absl::SimpleAtod(line.substr(space + 1), &sample.value)) {
      return absl::InvalidArgumentError(absl::StrCat("metrics text: cannot read \"", line, "\""));
    }
    if (brace != absl::string_view::npos && brace < space) {
      sample.name = std::string(series.substr(0, brace));
      absl::string_view labels = series.substr(brace + 1);
      if (!absl::ConsumeSuffix(&labels, "}") || !ParseLabels(labels, sample.labels).ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("metrics text: cannot read the labels of \"", line, "\""));
      }
    } else {
      sample.name = std::string(series);
    }
    samples.push_back(std::move(sample));
  }
  return samples;
}

absl::StatusOr<std::vector<MetricSample>> Scrape(int port) {
  absl::StatusOr<std::string> text = ScrapeText(port);
  if (!text.ok()) return text.status();
  return ParseSamples(*text);
}

double Sum(const std::vector<MetricSample>& samples, const std::string& name,
           const std::map<std::string, std::string>& labels) {
  double sum = 0;
  for (const MetricSample& sample : samples) {
    if (sample.name != name) continue;
    bool matches = true;
    for (const auto& [label, value] : labels) {
      auto it = sample.labels.find(label);
      matches = matches && it != sample.labels.end() && it->second == value;
    }
    if (matches) sum += sample.value;
  }
  return sum;
}

int Count(const std::vector<MetricSample>& samples, const std::string& name) {
  int count = 0;
  for (const MetricSample& sample : samples) count += sample.name == name;
  return count;
}

}  // namespace kvtier::test
