#include "tests/server_probe.h"

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "proto/wire/status_convert.h"

namespace kvtier::test {
namespace {

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!buffer.Dump(&slices).ok()) return bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

// Reads a protobuf varint at `*pos`; false past the end.
bool ReadVarint(const std::string& bytes, size_t* pos, uint64_t* value) {
  *value = 0;
  for (int shift = 0; *pos < bytes.size() && shift < 64; shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(bytes[(*pos)++]);
    *value |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// The length-delimited fields numbered `field` of a serialized message.
std::vector<std::string> LengthDelimited(const std::string& message, uint32_t field) {
  std::vector<std::string> values;
  size_t pos = 0;
  uint64_t key = 0, length = 0;
  while (ReadVarint(message, &pos, &key)) {
    switch (key & 7) {
      case 0:
        if (!ReadVarint(message, &pos, &length)) return values;
        break;
      case 2:
        if (!ReadVarint(message, &pos, &length) || pos + length > message.size()) return values;
        if ((key >> 3) == field) values.push_back(message.substr(pos, length));
        pos += length;
        break;
      default:
        return values;  // not used by the messages read here
    }
  }
  return values;
}

}  // namespace

absl::Status CheckServing(const std::string& address, const std::string& service) {
  grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  // HealthCheckRequest{service}: field 1, length-delimited (names stay under 128 bytes).
  grpc::Slice slice(
      service.empty()
          ? std::string()
          : absl::StrCat("\x0a", std::string(1, static_cast<char>(service.size())), service));
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status answer) {
                   status = std::move(answer);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return FromGrpcStatus(status, absl::StrCat("Health/Check ", service));
  const std::string bytes = Flatten(response);
  if (bytes == std::string("\x08\x01", 2)) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("Health/Check: not SERVING, answer ", absl::BytesToHexString(bytes)));
}

absl::Status WaitServing(const std::string& address, const std::string& service) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  absl::Status status = CheckServing(address, service);
  while (!status.ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
    status = CheckServing(address, service);
  }
  return status;
}

absl::StatusOr<std::vector<std::string>> ListServices(const std::string& address) {
  grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue queue;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &queue);
  // Each operation in turn, waited for: start, one request, one answer, end.
  auto wait = [&queue](auto start) {
    void* tag = nullptr;
    bool ok = false;
    start(reinterpret_cast<void*>(1));
    return queue.Next(&tag, &ok) && ok;
  };
  // ServerReflectionRequest{list_services: ""}: field 7, length 0.
  grpc::Slice request_slice(std::string("\x3a\x00", 2));
  const grpc::ByteBuffer request(&request_slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  const bool exchanged = wait([&](void* tag) { call->StartCall(tag); }) &&
                         wait([&](void* tag) { call->Write(request, tag); }) &&
                         wait([&](void* tag) { call->Read(&response, tag); });
  wait([&](void* tag) { call->WritesDone(tag); });
  wait([&](void* tag) { call->Finish(&status, tag); });
  if (!status.ok()) return FromGrpcStatus(status, "ServerReflectionInfo");
  if (!exchanged) return absl::UnavailableError("ServerReflectionInfo: no answer");
  // ServerReflectionResponse.list_services_response (6) -> ListServiceResponse.service (1)
  // -> ServiceResponse.name (1).
  std::vector<std::string> names;
  for (const std::string& list : LengthDelimited(Flatten(response), 6)) {
    for (const std::string& service : LengthDelimited(list, 1)) {
      for (const std::string& name : LengthDelimited(service, 1)) names.push_back(name);
    }
  }
  return names;
}

}  // namespace kvtier::test
