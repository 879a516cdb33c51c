#include "cache/kv/cuda/cuda_kv_pool.h"

#include <cuda_runtime_api.h>

#include <cstring>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cache/kv/cuda/cuda_attention_batch.h"
#include "cache/kv/cuda/cuda_buffers.h"
#include "cache/kv/cuda/cuda_status.h"
#include "cache/kv/cuda/kv_copy_cuda.h"
#include "cache/kv/cuda/paged_attention_cuda.h"

namespace kvtier {
namespace {

// One call of a pool on a thread: makes the pool's device current (gRPC threads move between
// pools) and, however the call ends, waits for the pool's stream, so nothing queued outlives
// the call that staged its buffers, and gives the thread its previous device back.
class DeviceCall {
 public:
  DeviceCall(int device, cudaStream_t stream) : stream_(stream) {
    if (cudaGetDevice(&previous_device_) != cudaSuccess) previous_device_ = device;
    status_ = CudaCallStatus(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceCall() {
    // Errors here were, or will be, reported by the call's own checks.
    cudaStreamSynchronize(stream_);
    cudaSetDevice(previous_device_);
    cudaGetLastError();
  }
  DeviceCall(const DeviceCall&) = delete;
  DeviceCall& operator=(const DeviceCall&) = delete;

  // Whether the device could be made current.
  const absl::Status& status() const { return status_; }

 private:
  const cudaStream_t stream_;
  int previous_device_ = 0;
  absl::Status status_;
};

// Every call holds mu_, stages its tensors through pinned_ and the device buffers under a
// DeviceCall, and waits for its stream before returning.
class CudaKvPool final : public KvPool {
 public:
  CudaKvPool(const KvPoolShape& shape, int device, int num_sms, char* slab, cudaStream_t stream)
      : KvPool(shape), device_(device), num_sms_(num_sms), slab_(slab), stream_(stream) {}

  ~CudaKvPool() override {
    { const DeviceCall drain(device_, stream_); }
    cudaStreamDestroy(stream_);
    cudaFree(slab_);
    cudaGetLastError();
  }

  CudaPoolMemory memory() const { return {device_, slab_, layer_bytes(), shape().block_bytes()}; }

 private:
  int64_t layer_bytes() const { return shape().block_bytes() * shape().num_blocks; }

  cuda::DeviceKvLayer Layer(int layer) const {
    char* k = slab_ + 2 * layer * layer_bytes();
    return {k, k + layer_bytes(), shape().num_kv_heads, shape().block_size,
            shape().head_dim * DTypeSize(shape().dtype)};
  }

  // Stages [k][v][slots] for WriteKv and ReadKv; returns the slots' device address.
  absl::StatusOr<const int64_t*> StageSlots(absl::Span<const int64_t> slots, int64_t kv_bytes) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const size_t slot_bytes = slots.size() * sizeof(int64_t);
    const size_t bytes = 2 * kv_bytes + slot_bytes;
    for (CudaBuffer* buffer : {&pinned_, &input_}) {
      if (absl::Status status = buffer->Reserve(bytes); !status.ok()) return status;
    }
    std::memcpy(pinned_.data() + 2 * kv_bytes, slots.data(), slot_bytes);
    return reinterpret_cast<const int64_t*>(input_.data() + 2 * kv_bytes);
  }

  absl::Status DoWriteKv(int layer, absl::Span<const int64_t> slots, const char* k,
                         const char* v) override {
    absl::MutexLock lock(&mu_);
    const DeviceCall call(device_, stream_);
    if (!call.status().ok()) return call.status();
    const int64_t kv_bytes = static_cast<int64_t>(slots.size()) * shape().token_bytes();
    absl::StatusOr<const int64_t*> device_slots = StageSlots(slots, kv_bytes);
    if (!device_slots.ok()) return device_slots.status();
    std::memcpy(pinned_.data(), k, kv_bytes);
    std::memcpy(pinned_.data() + kv_bytes, v, kv_bytes);
    KVTIER_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(input_.data(), pinned_.data(),
                                                2 * kv_bytes + slots.size() * sizeof(int64_t),
                                                cudaMemcpyHostToDevice, stream_));
    KVTIER_CUDA_RETURN_IF_ERROR(cuda::LaunchScatterKv(Layer(layer), *device_slots, slots.size(),
                                                      input_.data(), input_.data() + kv_bytes,
                                                      stream_));
    KVTIER_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return absl::OkStatus();
  }

  absl::Status DoReadKv(int layer, absl::Span<const int64_t> slots, char* k,
                        char* v) const override {
    absl::MutexLock lock(&mu_);
    const DeviceCall call(device_, stream_);
    if (!call.status().ok()) return call.status();
    const int64_t kv_bytes = static_cast<int64_t>(slots.size()) * shape().token_bytes();
    absl::StatusOr<const int64_t*> device_slots = StageSlots(slots, kv_bytes);
    if (!device_slots.ok()) return device_slots.status();
    KVTIER_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(const_cast<int64_t*>(*device_slots), pinned_.data() + 2 * kv_bytes,
                        slots.size() * sizeof(int64_t), cudaMemcpyHostToDevice, stream_));
    KVTIER_CUDA_RETURN_IF_ERROR(cuda::LaunchGatherKv(Layer(layer), *device_slots, slots.size(),
                                                     input_.data(), input_.data() + kv_bytes,
                                                     stream_));
    KVTIER_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(pinned_.data(), input_.data(), 2 * kv_bytes,
                                                cudaMemcpyDeviceToHost, stream_));
    KVTIER_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    std::memcpy(k, pinned_.data(), kv_bytes);
    std::memcpy(v, pinned_.data() + kv_bytes, kv_bytes);
    return absl::OkStatus();
  }

  absl::Status DoAttend(int layer, absl::Span<const SequenceLayout> sequences,
                        const AttentionParams& params, const char* q, char* out) const override {
    absl::MutexLock lock(&mu_);
    const DeviceCall call(device_, stream_);
    if (!call.status().ok()) return call.status();
    absl::StatusOr<cuda::PagedAttentionLaunch> launch =
        batch_.Prepare(sequences, params, shape(), num_sms_, stream_);
    if (!launch.ok()) return launch.status();
    const size_t bytes =
        TotalQueries(sequences) * params.num_q_heads * shape().head_dim * DTypeSize(shape().dtype);
    // q goes in [0, bytes) of the buffers, out comes back in [bytes, 2 bytes).
    for (CudaBuffer* buffer : {&pinned_, &input_}) {
      if (absl::Status status = buffer->Reserve(2 * bytes); !status.ok()) return status;
    }
    std::memcpy(pinned_.data(), q, bytes);
    KVTIER_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(input_.data(), pinned_.data(), bytes, cudaMemcpyHostToDevice, stream_));
    const cuda::DeviceKvLayer kv = Layer(layer);
    launch->k = kv.k;
    launch->v = kv.v;
    launch->q = input_.data();
    launch->out = input_.data() + bytes;
    KVTIER_CUDA_RETURN_IF_ERROR(cuda::LaunchPagedAttention(*launch, stream_));
    KVTIER_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(pinned_.data() + bytes, input_.data() + bytes,
                                                bytes, cudaMemcpyDeviceToHost, stream_));
    KVTIER_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    std::memcpy(out, pinned_.data() + bytes, bytes);
    return absl::OkStatus();
  }

  const int device_;
  const int num_sms_;
  char* const slab_;
  const cudaStream_t stream_;

  // Serializes the calls, which share the stream and these buffers.
  mutable absl::Mutex mu_;
  mutable CudaBuffer pinned_ ABSL_GUARDED_BY(mu_){CudaBuffer::Memory::kPinnedHost};
  mutable CudaBuffer input_ ABSL_GUARDED_BY(mu_){CudaBuffer::Memory::kDevice};
  mutable CudaAttentionBatch batch_ ABSL_GUARDED_BY(mu_);
};

absl::Status CheckShapeForKernels(const KvPoolShape& shape) {
  if (absl::Status status = shape.Validate(); !status.ok()) return status;
  if (!cuda::PagedAttentionSupportsHeadDim(shape.head_dim)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "head_dim: the CUDA kernels are built for 64, 128 or 256, got ", shape.head_dim));
  }
  return absl::OkStatus();
}

// Allocates and zeroes the slab and creates the stream on the current device, freeing what it
// made on failure.
absl::StatusOr<std::unique_ptr<KvPool>> CreateOnDevice(const KvPoolShape& shape, int device) {
  int num_sms = 0;
  KVTIER_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  void* slab = nullptr;
  if (cudaError_t error = cudaMalloc(&slab, shape.total_bytes()); error != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it
    return absl::ResourceExhaustedError(
        absl::StrCat("cudaMalloc: cannot allocate ", shape.total_bytes(), " bytes on cuda:", device,
                     " for the KV pool (", shape.DebugString(), "): ", cudaGetErrorString(error)));
  }
  cudaStream_t stream = nullptr;
  absl::Status status = CudaCallStatus(cudaMemset(slab, 0, shape.total_bytes()), "cudaMemset");
  if (status.ok()) {
    status = CudaCallStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                            "cudaStreamCreateWithFlags");
  }
  if (status.ok()) status = CudaCallStatus(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  if (!status.ok()) {
    if (stream != nullptr) cudaStreamDestroy(stream);
    cudaFree(slab);
    return status;
  }
  return std::unique_ptr<KvPool>(
      new CudaKvPool(shape, device, num_sms, static_cast<char*>(slab), stream));
}

}  // namespace

bool CudaBackendBuilt() { return true; }

absl::StatusOr<int> CudaDeviceCount() {
  int count = 0;
  if (absl::Status status = CudaCallStatus(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
      !status.ok()) {
    return absl::FailedPreconditionError(status.message());
  }
  if (count == 0) return absl::FailedPreconditionError("cudaGetDeviceCount: no CUDA device");
  return count;
}

absl::StatusOr<std::unique_ptr<KvPool>> CreateCudaKvPool(const KvPoolShape& shape,
                                                         const CudaKvPoolOptions& options) {
  if (absl::Status status = CheckShapeForKernels(shape); !status.ok()) return status;
  absl::StatusOr<int> count = CudaDeviceCount();
  if (!count.ok()) return count.status();
  if (options.device < 0 || options.device >= *count) {
    return absl::InvalidArgumentError(
        absl::StrCat("device: expected cuda:0..cuda:", *count - 1, ", got cuda:", options.device));
  }
  KVTIER_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));
  return CreateOnDevice(shape, options.device);
}

absl::StatusOr<CudaPoolMemory> CudaPoolMemoryOf(const KvPool& pool) {
  const auto* cuda_pool = dynamic_cast<const CudaKvPool*>(&pool);
  if (cuda_pool == nullptr) {
    return absl::FailedPreconditionError("the pool is not in CUDA device memory");
  }
  return cuda_pool->memory();
}

}  // namespace kvtier
