// Faults kvtier-load's own tests inject, through flags kept out of --help (they are defined
// here, not in load_main.cc): --test_corrupt_output=N makes the N-th verified layer output of
// the run wrong before its check, so a test can see --verify fail the run.
#ifndef KVTIER_CLIENT_LOAD_TEST_FAULTS_H_
#define KVTIER_CLIENT_LOAD_TEST_FAULTS_H_

#include <cstdint>

namespace kvtier {

// --test_corrupt_output; 0: none.
int64_t TestCorruptOutput();

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_TEST_FAULTS_H_
