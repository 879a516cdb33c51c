#include "proto/wire/stop_signals.h"

#include <pthread.h>

#include <csignal>
#include <initializer_list>

namespace kvtier {

StopSignals::StopSignals() {
  sigemptyset(&signals_);
  for (int signal : {SIGTERM, SIGINT}) {
    std::signal(signal, SIG_DFL);
    sigaddset(&signals_, signal);
  }
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
}

int StopSignals::Wait() {
  int signal = 0;
  sigwait(&signals_, &signal);
  return signal;
}

}  // namespace kvtier
