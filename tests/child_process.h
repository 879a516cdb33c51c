// Test support: a binary run as a child process, as an operator runs it. Its stdout is read
// line by line through a pipe; its stderr goes to an unlinked temporary file, read whole at
// any time (so a chatty child never blocks on a full pipe). RunChild runs one to its end.
//
// Thread-compatible: one test thread drives it.
#ifndef KVTIER_TESTS_CHILD_PROCESS_H_
#define KVTIER_TESTS_CHILD_PROCESS_H_

#include <sys/types.h>

#include <cstdio>
#include <string>
#include <vector>

namespace kvtier::test {

class ChildProcess {
 public:
  // Starts argv[0] (a path) with `argv`.
  explicit ChildProcess(std::vector<std::string> argv);
  // Kills the child (SIGKILL) unless it was waited for.
  ~ChildProcess();

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool started() const { return pid_ > 0; }

  // The next stdout line starting with `prefix`, without it; empty at the end of the output.
  std::string LineAfter(const std::string& prefix);
  // The rest of stdout, until the child closes it.
  std::string RestOfOutput();
  // Everything the child wrote to stderr so far.
  std::string ErrorOutput() const;

  void Signal(int signal);

  // The exit status (as waitpid reports it), once; -1 after that or if it never started.
  int Wait();

 private:
  pid_t pid_ = -1;
  FILE* output_ = nullptr;
  int error_fd_ = -1;
};

// "exited with 0", "killed by signal 9", ...: a waitpid status for test messages.
std::string DescribeExit(int status);

// A child run to its end: its exit code and all it wrote.
struct ChildRun {
  int exit_code = -1;  // -1 unless it exited
  std::string output;  // stdout
  std::string errors;  // stderr
};

// Runs `command` (a path first) to its end; a test failure when it cannot start.
ChildRun RunChild(const std::vector<std::string>& command);

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_CHILD_PROCESS_H_
