// Test support: collects the lines of the lifecycle log (proto/wire/log.h) while it lives,
// instead of writing them to stderr.
//
// Thread-safe: lines may arrive from any thread.
#ifndef KVTIER_TESTS_LOG_CAPTURE_H_
#define KVTIER_TESTS_LOG_CAPTURE_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace kvtier::test {

// A line's time, as a regular expression (POSIX extended, as gtest's MatchesRegex takes it).
inline constexpr char kLogTimeRegex[] =
    "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z";

class LogCapture {
 public:
  // Replaces the log's sink; the destructor puts stderr back.
  LogCapture();
  ~LogCapture();

  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // The lines so far, "\n" included.
  std::vector<std::string> lines() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_LOG_CAPTURE_H_
