// The lifecycle log of kvtier's servers: one line per event (a server serving, a shard joining
// or leaving, head ranges assigned, sessions dropped), as
//
//   2026-12-01T10:12:36.123456Z kvtier-coordinator: shard 2 joined: 10.0.0.7:50061, ...
//
// with the time in UTC to the microsecond and the program's name (argv[0]'s base name, set by
// ParseCommandLine; "kvtier" until then). Each line goes to the sink in one piece: by default
// one write(2) to stderr, so the lines of concurrent threads never interleave. Cheap enough to
// call under a lock (a format and a write); the binaries' stdout stays for what scripts read.
//
// With LogFormat::kJson (--log_format=json, for cluster log pipelines) each line is instead one
// JSON object: {"time":"2026-12-01T10:12:36.123456Z","program":"kvtier-coordinator",
// "message":"shard 2 joined: ..."}.
//
// Thread-safe: one mutex guards the program name, the format and the sink, and is held while a
// line is written, so a sink sees one line at a time.
#ifndef KVTIER_PROTO_WIRE_LOG_H_
#define KVTIER_PROTO_WIRE_LOG_H_

#include <functional>

#include "absl/strings/string_view.h"

namespace kvtier {

// Receives whole lines, "\n" included.
using LogSink = std::function<void(absl::string_view line)>;

// Names the program in every line from now on: `argv0`'s part after the last '/'.
void SetLogProgramName(absl::string_view argv0);

enum class LogFormat { kText, kJson };
// How lines are written from now on (kText until then).
void SetLogFormat(LogFormat format);

// Sends lines to `sink` from now on (null: stderr again); returns the previous sink (null for
// stderr). For tests that read the log.
LogSink SetLogSink(LogSink sink);

// Writes one line: the time, the program name and `message`.
void Log(absl::string_view message);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_LOG_H_
