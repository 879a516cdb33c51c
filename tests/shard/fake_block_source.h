// FakeBlockSource: a kvtier.v1.BlockTransferService source that misbehaves on purpose, served on an
// ephemeral 127.0.0.1 port, for the destination's side of shard-to-shard transfers.
// DescribeRange accepts any range (no NCCL); ReadBlocks sends one block-layer, then does what
// its Behavior says. Kill stops the server at once, cancelling a ReadBlocks in flight, as a
// crash would.
//
// Thread-safe: the behavior is fixed at construction; the rest are notifications.
#ifndef KVTIER_TESTS_SHARD_FAKE_BLOCK_SOURCE_H_
#define KVTIER_TESTS_SHARD_FAKE_BLOCK_SOURCE_H_

#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "kvtier/v1/transfer.grpc.pb.h"

namespace kvtier {

class FakeBlockSource final : public v1::BlockTransferService::Service {
 public:
  enum class Behavior {
    kHang,        // after the first block-layer, waits until the call is cancelled
    kEndEarly,    // after the first block-layer, ends the stream with OK
    kWrongOrder,  // sends the first block's layer 1 where its layer 0 is due
  };

  explicit FakeBlockSource(Behavior behavior);
  ~FakeBlockSource() override;

  const std::string& address() const { return address_; }

  // Waits until ReadBlocks has sent its one block-layer; false after `timeout`.
  bool WaitUntilFirstSent(absl::Duration timeout) const {
    return first_sent_.WaitForNotificationWithTimeout(timeout);
  }

  // Waits until a hanging ReadBlocks has seen its call cancelled; false after `timeout`.
  bool WaitUntilCancelled(absl::Duration timeout) const {
    return cancelled_.WaitForNotificationWithTimeout(timeout);
  }

  // Stops serving now; calls in flight are cancelled.
  void Kill();

  grpc::Status DescribeRange(grpc::ServerContext* context, const v1::DescribeRangeRequest* request,
                             v1::DescribeRangeResponse* response) override;
  grpc::Status ReadBlocks(grpc::ServerContext* context, const v1::ReadBlocksRequest* request,
                          grpc::ServerWriter<v1::ReadBlocksResponse>* writer) override;

 private:
  const Behavior behavior_;
  absl::Notification first_sent_;
  absl::Notification cancelled_;
  std::string address_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace kvtier

#endif  // KVTIER_TESTS_SHARD_FAKE_BLOCK_SOURCE_H_
