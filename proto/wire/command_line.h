// The command line of kvtier's binaries: Abseil flags, with --help listing the flags their own
// main file defines (Abseil's default looks for a file named after the program, which ours are
// not: kvtier-shard is built from shard/shard_main.cc), files named relative to the source
// tree, and the program named in the log (proto/wire/log.h). It is every binary's first call,
// so it also sets what the process runs with: no absl::Mutex deadlock detection.
#ifndef KVTIER_PROTO_WIRE_COMMAND_LINE_H_
#define KVTIER_PROTO_WIRE_COMMAND_LINE_H_

#include <vector>

#include "absl/strings/string_view.h"

namespace kvtier {

// Sets `usage` as the program's usage message and parses the flags. --help (and Abseil's other
// usage flags) print to stdout and exit 0; a bad flag exits 1, as absl::ParseCommandLine does,
// and a bad --log_format 2. Sets the log's program name and format (--log_format), and turns
// absl::Mutex's deadlock detection off.
// Returns the positional arguments, argv[0] first.
std::vector<char*> ParseCommandLine(int argc, char** argv, absl::string_view usage);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_COMMAND_LINE_H_
