#include "tests/log_capture.h"

#include "proto/wire/log.h"

namespace kvtier::test {

LogCapture::LogCapture() {
  SetLogSink([this](absl::string_view line) {
    absl::MutexLock lock(&mu_);
    lines_.emplace_back(line);
  });
}

LogCapture::~LogCapture() { SetLogSink(nullptr); }

std::vector<std::string> LogCapture::lines() const {
  absl::MutexLock lock(&mu_);
  return lines_;
}

}  // namespace kvtier::test
