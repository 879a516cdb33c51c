#include "tests/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

extern char** environ;

namespace kvtier::test {

ChildProcess::ChildProcess(std::vector<std::string> argv) {
  // Close-on-exec, so that only this child gets them (as its stdout and stderr).
  FILE* error_file = std::tmpfile();
  if (error_file == nullptr) return;
  error_fd_ = fcntl(fileno(error_file), F_DUPFD_CLOEXEC, 0);
  std::fclose(error_file);
  int pipe_fds[2];
  if (error_fd_ < 0 || pipe2(pipe_fds, O_CLOEXEC) != 0) return;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, error_fd_, STDERR_FILENO);
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  output_ = fdopen(pipe_fds[0], "r");
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) Signal(SIGKILL);
  Wait();
  if (output_ != nullptr) std::fclose(output_);
  if (error_fd_ >= 0) close(error_fd_);
}

std::string ChildProcess::LineAfter(const std::string& prefix) {
  char buffer[4096];
  while (output_ != nullptr && fgets(buffer, sizeof(buffer), output_) != nullptr) {
    absl::string_view line = absl::StripTrailingAsciiWhitespace(buffer);
    if (absl::ConsumePrefix(&line, prefix)) return std::string(line);
  }
  return "";
}

std::string ChildProcess::RestOfOutput() {
  std::string output;
  char buffer[4096];
  size_t read = 0;
  while (output_ != nullptr && (read = fread(buffer, 1, sizeof(buffer), output_)) > 0) {
    output.append(buffer, read);
  }
  return output;
}

std::string ChildProcess::ErrorOutput() const {
  struct stat info;
  if (error_fd_ < 0 || fstat(error_fd_, &info) != 0) return "";
  std::string output(info.st_size, '\0');
  const ssize_t read = pread(error_fd_, output.data(), output.size(), 0);
  output.resize(read > 0 ? read : 0);
  return output;
}

void ChildProcess::Signal(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

int ChildProcess::Wait() {
  int status = -1;
  if (pid_ > 0) waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

ChildRun RunChild(const std::vector<std::string>& command) {
  ChildProcess process(command);
  EXPECT_TRUE(process.started()) << command[0];
  ChildRun run;
  run.output = process.RestOfOutput();
  const int status = process.Wait();
  run.errors = process.ErrorOutput();
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  return run;
}

}  // namespace kvtier::test
