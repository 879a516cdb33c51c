// NCCL block transfers (nccl_block_transfer.h), built when CMake found NCCL.
#include "shard/nccl_block_transfer.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cache/kv/cuda/cuda_kv_pool.h"
#include "cache/kv/cuda/cuda_status.h"

namespace kvtier {
namespace {

static_assert(kNcclUniqueIdBytes == NCCL_UNIQUE_ID_BYTES);

// How often a wait on a communicator or a stream looks again.
constexpr absl::Duration kPollInterval = absl::Microseconds(200);

constexpr int kSenderRank = 0;
constexpr int kReceiverRank = 1;

// `result` of `call` as a status, with NCCL's last error message for `comm` (which may be
// null). A failure of the other rank is UNAVAILABLE.
absl::Status NcclError(ncclResult_t result, absl::string_view call, ncclComm_t comm) {
  std::string message = absl::StrCat(call, ": ", ncclGetErrorString(result));
  const char* detail = ncclGetLastError(comm);
  if (detail != nullptr && *detail != '\0') absl::StrAppend(&message, " (", detail, ")");
  return result == ncclRemoteError ? absl::UnavailableError(message) : absl::InternalError(message);
}

// ncclInProgress is how a non-blocking communicator accepts work.
absl::Status NcclCall(ncclResult_t result, absl::string_view call, ncclComm_t comm) {
  if (result == ncclSuccess || result == ncclInProgress) return absl::OkStatus();
  return NcclError(result, call, comm);
}

// Cleanup in a destructor has no caller to tell: its failures go to stderr.
void ReportCleanupFailure(const absl::Status& status) {
  if (status.ok()) return;
  const std::string message = status.ToString();
  std::fprintf(stderr, "kvtier-shard: NCCL transfer cleanup: %s\n", message.c_str());
}

// DEADLINE_EXCEEDED or CANCELLED when a wait for `what` must stop now.
absl::Status GiveUp(absl::string_view what, absl::Time deadline,
                    absl::FunctionRef<bool()> cancelled) {
  if (cancelled()) return absl::CancelledError(absl::StrCat(what, ": cancelled"));
  if (absl::Now() >= deadline) {
    return absl::DeadlineExceededError(
        absl::StrCat(what, ": not done by the deadline; communicator aborted"));
  }
  return absl::OkStatus();
}

// A CUDA stream on the current device, destroyed with this object.
class Stream {
 public:
  static absl::StatusOr<std::unique_ptr<Stream>> Create() {
    auto stream = std::unique_ptr<Stream>(new Stream);
    absl::Status status =
        CudaCallStatus(cudaStreamCreateWithFlags(&stream->stream_, cudaStreamNonBlocking),
                       "cudaStreamCreateWithFlags");
    if (!status.ok()) return status;
    return stream;
  }
  ~Stream() {
    if (stream_ != nullptr) {
      ReportCleanupFailure(CudaCallStatus(cudaStreamDestroy(stream_), "cudaStreamDestroy"));
    }
  }
  cudaStream_t get() const { return stream_; }

 private:
  Stream() = default;
  cudaStream_t stream_ = nullptr;
};

// One rank of a two-rank non-blocking communicator. Aborted on destruction unless Close ran:
// abort is how NCCL gives up on a peer without waiting for it.
class Communicator {
 public:
  // Joins as `rank`, waiting until the other rank has joined too.
  static absl::StatusOr<std::unique_ptr<Communicator>> Join(const ncclUniqueId& id, int rank,
                                                            absl::Time deadline,
                                                            absl::FunctionRef<bool()> cancelled) {
    auto communicator = std::unique_ptr<Communicator>(new Communicator);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    absl::Status status =
        NcclCall(ncclCommInitRankConfig(&communicator->comm_, 2, id, rank, &config),
                 "ncclCommInitRankConfig", communicator->comm_);
    if (status.ok()) status = communicator->Wait("ncclCommInitRankConfig", deadline, cancelled);
    if (!status.ok()) return status;
    return communicator;
  }

  ~Communicator() {
    if (comm_ != nullptr) {
      ReportCleanupFailure(NcclCall(ncclCommAbort(comm_), "ncclCommAbort", comm_));
    }
  }

  ncclComm_t get() const { return comm_; }

  // Waits until the communicator has finished what `call` started.
  absl::Status Wait(absl::string_view call, absl::Time deadline,
                    absl::FunctionRef<bool()> cancelled) const {
    while (true) {
      absl::StatusOr<bool> busy = Busy(call);
      if (!busy.ok() || !*busy) return busy.status();
      if (absl::Status status = GiveUp(call, deadline, cancelled); !status.ok()) return status;
      absl::SleepFor(kPollInterval);
    }
  }

  // Whether the communicator still works on what `call` started; its error when it failed.
  absl::StatusOr<bool> Busy(absl::string_view call) const {
    ncclResult_t state = ncclSuccess;
    if (absl::Status status =
            NcclCall(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", comm_);
        !status.ok()) {
      return status;
    }
    if (state == ncclInProgress) return true;
    if (state != ncclSuccess) return NcclError(state, call, comm_);
    return false;
  }

  // Flushes and frees the communicator.
  absl::Status Close(absl::Time deadline, absl::FunctionRef<bool()> cancelled) {
    absl::Status status = NcclCall(ncclCommFinalize(comm_), "ncclCommFinalize", comm_);
    if (status.ok()) status = Wait("ncclCommFinalize", deadline, cancelled);
    if (!status.ok()) return status;
    status = NcclCall(ncclCommDestroy(comm_), "ncclCommDestroy", comm_);
    comm_ = nullptr;
    return status;
  }

 private:
  Communicator() = default;
  ncclComm_t comm_ = nullptr;
};

// A run of consecutive block ids.
struct BlockRun {
  int32_t first = 0;
  int32_t count = 0;
};

// `block_ids` sorted and coalesced: the same on both ranks for the same list.
std::vector<BlockRun> BlockRuns(absl::Span<const int32_t> block_ids) {
  std::vector<int32_t> sorted(block_ids.begin(), block_ids.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<BlockRun> runs;
  for (const int32_t block : sorted) {
    if (!runs.empty() && runs.back().first + runs.back().count == block) {
      ++runs.back().count;
    } else {
      runs.push_back(BlockRun{.first = block, .count = 1});
    }
  }
  return runs;
}

// Enqueues one layer's sends (rank 0) or receives (rank 1) on `stream` as one NCCL group.
absl::Status EnqueueLayer(const CudaPoolMemory& memory, int layer, absl::Span<const BlockRun> runs,
                          int rank, const Communicator& communicator, cudaStream_t stream) {
  absl::Status status = NcclCall(ncclGroupStart(), "ncclGroupStart", communicator.get());
  if (!status.ok()) return status;
  for (const BlockRun& run : runs) {
    for (const int64_t half : {0, 1}) {  // K, then V
      char* data = memory.slab + (2 * int64_t{layer} + half) * memory.layer_bytes +
                   run.first * memory.block_bytes;
      const size_t bytes = static_cast<size_t>(run.count * memory.block_bytes);
      status =
          rank == kSenderRank
              ? NcclCall(
                    ncclSend(data, bytes, ncclUint8, kReceiverRank, communicator.get(), stream),
                    "ncclSend", communicator.get())
              : NcclCall(ncclRecv(data, bytes, ncclUint8, kSenderRank, communicator.get(), stream),
                         "ncclRecv", communicator.get());
      if (!status.ok()) break;
    }
    if (!status.ok()) break;
  }
  // NOTE: the group is closed even after a failure: it is this thread's state, and the thread
  // goes on to serve other calls.
  status.Update(NcclCall(ncclGroupEnd(), "ncclGroupEnd", communicator.get()));
  return status;
}

// Waits until `stream` has run everything enqueued, watching the communicator for a failure
// of the other rank meanwhile.
absl::Status WaitForStream(cudaStream_t stream, const Communicator& communicator,
                           absl::Time deadline, absl::FunctionRef<bool()> cancelled) {
  while (true) {
    const cudaError_t query = cudaStreamQuery(stream);
    if (query == cudaSuccess) return absl::OkStatus();
    if (query != cudaErrorNotReady) return CudaCallStatus(query, "cudaStreamQuery");
    if (absl::StatusOr<bool> busy = communicator.Busy("ncclSend/ncclRecv"); !busy.ok()) {
      return busy.status();
    }
    if (absl::Status status = GiveUp("NCCL transfer", deadline, cancelled); !status.ok()) {
      return status;
    }
    absl::SleepFor(kPollInterval);
  }
}

// Rank `rank` of a transfer of `block_ids` between two pools of the same shape.
absl::Status Transfer(const KvPool& pool, absl::Span<const int32_t> block_ids,
                      absl::string_view unique_id, int rank, absl::Time deadline,
                      absl::FunctionRef<bool()> cancelled) {
  if (absl::Status status = CheckNcclUniqueId(unique_id); !status.ok()) return status;
  absl::StatusOr<CudaPoolMemory> memory = CudaPoolMemoryOf(pool);
  if (!memory.ok()) return memory.status();
  if (absl::Status status = CudaCallStatus(cudaSetDevice(memory->device), "cudaSetDevice");
      !status.ok()) {
    return status;
  }
  absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Create();
  if (!stream.ok()) return stream.status();
  ncclUniqueId id;
  std::memcpy(id.internal, unique_id.data(), sizeof(id.internal));
  absl::StatusOr<std::unique_ptr<Communicator>> communicator =
      Communicator::Join(id, rank, deadline, cancelled);
  if (!communicator.ok()) return communicator.status();

  const std::vector<BlockRun> runs = BlockRuns(block_ids);
  for (int layer = 0; layer < pool.shape().num_layers; ++layer) {
    absl::Status status =
        EnqueueLayer(*memory, layer, runs, rank, **communicator, (*stream)->get());
    if (status.ok()) status = (*communicator)->Wait("ncclGroupEnd", deadline, cancelled);
    if (!status.ok()) return status;
  }
  if (absl::Status status = WaitForStream((*stream)->get(), **communicator, deadline, cancelled);
      !status.ok()) {
    return status;
  }
  return (*communicator)->Close(deadline, cancelled);
}

}  // namespace

bool NcclTransferBuilt() { return true; }

absl::StatusOr<std::string> NcclDeviceOf(const KvPool& pool) {
  absl::StatusOr<CudaPoolMemory> memory = CudaPoolMemoryOf(pool);
  if (!memory.ok()) return memory.status();
  cudaDeviceProp properties;
  if (absl::Status status = CudaCallStatus(cudaGetDeviceProperties(&properties, memory->device),
                                           "cudaGetDeviceProperties");
      !status.ok()) {
    return status;
  }
  return std::string(properties.uuid.bytes, sizeof(properties.uuid.bytes));
}

absl::StatusOr<std::string> NewNcclUniqueId() {
  ncclUniqueId id;
  if (absl::Status status = NcclCall(ncclGetUniqueId(&id), "ncclGetUniqueId", nullptr);
      !status.ok()) {
    return status;
  }
  return std::string(id.internal, sizeof(id.internal));
}

absl::Status SendBlocksOverNccl(const KvPool& pool, absl::Span<const int32_t> block_ids,
                                absl::string_view unique_id, absl::Time deadline,
                                absl::FunctionRef<bool()> cancelled) {
  return Transfer(pool, block_ids, unique_id, kSenderRank, deadline, cancelled);
}

absl::Status ReceiveBlocksOverNccl(KvPool& pool, absl::Span<const int32_t> block_ids,
                                   absl::string_view unique_id, absl::Time deadline,
                                   absl::FunctionRef<bool()> cancelled) {
  return Transfer(pool, block_ids, unique_id, kReceiverRank, deadline, cancelled);
}

}  // namespace kvtier
