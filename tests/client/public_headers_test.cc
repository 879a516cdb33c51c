// The library's public headers, included alone, bring in no gRPC plumbing: neither grpcpp nor
// generated service code (*.grpc.pb.h), only protobuf messages. This file fails to compile
// otherwise. (The guards are those of gRPC 1.51's headers and of protoc's gRPC plugin.)
#include "client/client.h"
#include "client/session.h"
#include "client/step.h"

#if defined(GRPCPP_CLIENT_CONTEXT_H) || defined(GRPCPP_IMPL_CODEGEN_CLIENT_CONTEXT_H) || \
    defined(GRPCPP_CHANNEL_H) || defined(GRPCPP_SUPPORT_SYNC_STREAM_H) ||                \
    defined(GRPCPP_IMPL_CODEGEN_STATUS_H) || defined(GRPCPP_SUPPORT_STATUS_H)
#error "client/{client,session,step}.h include grpcpp; keep it in client/client_internal.h"
#endif
#if defined(GRPC_kvtier_2fv1_2fsession_2eproto__INCLUDED) || \
    defined(GRPC_kvtier_2fv1_2fattention_2eproto__INCLUDED)
#error "client/{client,session,step}.h include *.grpc.pb.h; include *.pb.h instead"
#endif
