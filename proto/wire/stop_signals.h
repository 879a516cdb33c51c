// How the server binaries wait for SIGTERM and SIGINT: the signals are blocked in every thread
// and received by the one thread that calls Wait, so no handler runs in signal context.
//
// Construct in main before any thread starts (threads inherit the blocked mask). NOTE: an
// ignored signal is discarded even while blocked, and shells start background jobs with SIGINT
// ignored, so the constructor restores the default disposition first.
#ifndef KVTIER_PROTO_WIRE_STOP_SIGNALS_H_
#define KVTIER_PROTO_WIRE_STOP_SIGNALS_H_

#include <signal.h>

namespace kvtier {

class StopSignals {
 public:
  StopSignals();

  // Blocks until SIGTERM or SIGINT arrives; returns it.
  int Wait();

 private:
  sigset_t signals_;
};

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_STOP_SIGNALS_H_
