#include "shard/grpc_block_transfer.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/status_convert.h"

namespace kvtier {
namespace {

// Field tags and length prefixes of a BlockData message, generously.
constexpr int64_t kBlockDataFraming = 64;

// The slots of `block`, in token order.
std::vector<int64_t> BlockSlots(int32_t block, int block_size) {
  std::vector<int64_t> slots(block_size);
  for (int i = 0; i < block_size; ++i) slots[i] = int64_t{block} * block_size + i;
  return slots;
}

// Writes the `index`-th message of a ReadBlocks stream over `block_ids` into `pool`, after
// checking it is the block and layer that come `index`-th.
absl::Status WriteBlockData(KvPool& pool, absl::Span<const int32_t> block_ids, int64_t index,
                            const v1::ReadBlocksResponse& data) {
  const int num_layers = pool.shape().num_layers;
  const int64_t total = static_cast<int64_t>(block_ids.size()) * num_layers;
  if (index >= total) {
    return absl::InternalError(absl::StrCat("sent more than the ", total, " block-layers asked"));
  }
  const int32_t block = block_ids[index / num_layers];
  const int layer = static_cast<int>(index % num_layers);
  if (data.block_id() != block || data.layer() != layer) {
    return absl::InternalError(absl::StrCat("block-layer ", index, ": expected block ", block,
                                            " layer ", layer, ", got block ", data.block_id(),
                                            " layer ", data.layer()));
  }
  absl::Status status =
      pool.WriteKv(layer, BlockSlots(block, pool.shape().block_size), data.k(), data.v());
  if (status.ok()) return status;
  return absl::InternalError(absl::StrCat("block-layer ", index, " (block ", block, " layer ",
                                          layer, "): ", status.message()));
}

}  // namespace

absl::Status CheckBlockDataFits(const KvPoolShape& shape, int max_message_bytes) {
  const int64_t bytes = 2 * shape.block_bytes() + kBlockDataFraming;
  if (bytes <= max_message_bytes) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "max_message_bytes: one block of one layer (K and V of ", shape.block_size, " tokens x ",
      shape.num_kv_heads, " heads x ", shape.head_dim, " x ", DTypeName(shape.dtype), ") takes ",
      bytes, " bytes on the wire, over this shard's ", max_message_bytes));
}

absl::Status SourceCallStatus(const grpc::Status& status, absl::string_view source_name,
                              absl::string_view what) {
  const std::string context = absl::StrCat("source ", source_name, ": ", what);
  const absl::Status converted = FromGrpcStatus(status, context);
  switch (converted.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return converted;
    case absl::StatusCode::kCancelled:
      return absl::UnavailableError(converted.message());
    default:
      return absl::FailedPreconditionError(absl::StrCat(context, ": the source failed with ",
                                                        absl::StatusCodeToString(converted.code()),
                                                        ": ", status.error_message()));
  }
}

absl::Status StreamBlocks(const KvPool& pool, absl::Span<const int32_t> block_ids,
                          grpc::ServerWriterInterface<v1::ReadBlocksResponse>& writer) {
  const KvPoolShape& shape = pool.shape();
  v1::ReadBlocksResponse data;
  std::string& k = *data.mutable_k();
  std::string& v = *data.mutable_v();
  k.resize(shape.block_bytes());
  v.resize(shape.block_bytes());
  for (const int32_t block : block_ids) {
    const std::vector<int64_t> slots = BlockSlots(block, shape.block_size);
    data.set_block_id(block);
    for (int layer = 0; layer < shape.num_layers; ++layer) {
      data.set_layer(layer);
      absl::Status status = pool.ReadKv(layer, slots, absl::MakeSpan(k.data(), k.size()),
                                        absl::MakeSpan(v.data(), v.size()));
      if (!status.ok()) return status;
      if (!writer.Write(data)) {
        return absl::CancelledError(
            absl::StrCat("ReadBlocks: the reader went away at block ", block, " layer ", layer));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status PullBlocksOverGrpc(v1::BlockTransferService::Stub& source,
                                absl::string_view source_name, const v1::ReadBlocksRequest& request,
                                KvPool& pool, grpc::ClientContext& context) {
  const absl::Span<const int32_t> block_ids = request.block_ids();
  const int64_t total = static_cast<int64_t>(block_ids.size()) * pool.shape().num_layers;
  std::unique_ptr<grpc::ClientReaderInterface<v1::ReadBlocksResponse>> reader =
      source.ReadBlocks(&context, request);
  int64_t received = 0;
  absl::Status status;
  v1::ReadBlocksResponse data;
  while (status.ok() && reader->Read(&data)) {
    status = WriteBlockData(pool, block_ids, received, data);
    if (status.ok()) ++received;
  }
  if (!status.ok()) {
    context.TryCancel();
    while (reader->Read(&data)) {
    }
  }
  const grpc::Status finished = reader->Finish();
  const std::string what =
      absl::StrCat("ReadBlocks after ", received, " of ", total, " block-layers");
  if (!status.ok()) {
    return Prefixed(absl::StrCat("source ", source_name, ": ", what, ": "), status);
  }
  if (!finished.ok()) return SourceCallStatus(finished, source_name, what);
  if (received != total) {
    return absl::InternalError(
        absl::StrCat("source ", source_name, ": ", what, ": the stream ended"));
  }
  return absl::OkStatus();
}

}  // namespace kvtier
