#include "client/load/test_faults.h"

#include "absl/flags/flag.h"

ABSL_FLAG(int64_t, test_corrupt_output, 0,
          "testing only: the verified layer output (from 1) to make wrong before its check");

namespace kvtier {

int64_t TestCorruptOutput() { return absl::GetFlag(FLAGS_test_corrupt_output); }

}  // namespace kvtier
