// --log_format, which ParseCommandLine applies (command_line.h): every kvtier binary has it.
#include <string>

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, log_format, "text",
          "the lifecycle log on stderr: text (one line an event), or json (one JSON object a "
          "line: time, program, message) for cluster log pipelines");
