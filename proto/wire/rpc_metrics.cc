#include "proto/wire/rpc_metrics.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/support/status.h"
#include "prometheus/histogram.h"

namespace kvtier {
namespace {

using grpc::experimental::InterceptionHookPoints;

// The method of a call to `path` ("/package.Service/Method"), when the process links it.
const google::protobuf::MethodDescriptor* FindMethod(absl::string_view path) {
  absl::ConsumePrefix(&path, "/");
  return google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
      absl::StrReplaceAll(path, {{"/", "."}}));
}

class TimingInterceptor final : public grpc::experimental::Interceptor {
 public:
  TimingInterceptor(prometheus::Family<prometheus::Histogram>* durations, std::string method)
      : durations_(durations), method_(std::move(method)), start_(absl::Now()) {}

  // A call that ended without sending a status.
  ~TimingInterceptor() override {
    if (!recorded_) Record(grpc::StatusCode::CANCELLED);
  }

  // NOTE: recorded before the status is sent, so a caller that has seen it finds the call
  // counted.
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    static const prometheus::Histogram::BucketBoundaries* const buckets =
        new prometheus::Histogram::BucketBoundaries{25e-6,  50e-6,  100e-6, 250e-6, 500e-6, 1e-3,
                                                    2.5e-3, 5e-3,   10e-3,  25e-3,  50e-3,  100e-3,
                                                    250e-3, 500e-3, 1,      2.5,    5,      10};
    durations_
        ->Add({{"method", method_},
               {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}},
              *buckets)
        .Observe(absl::ToDoubleSeconds(absl::Now() - start_));
    recorded_ = true;
  }

  prometheus::Family<prometheus::Histogram>* const durations_;
  const std::string method_;
  const absl::Time start_;
  bool recorded_ = false;
};

class TimingInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit TimingInterceptorFactory(prometheus::Registry& registry)
      : durations_(&prometheus::BuildHistogram()
                        .Name("kvtier_rpc_server_duration_seconds")
                        .Help("Calls this server took, by method and status code, from their "
                              "start to their status")
                        .Register(registry)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const absl::string_view path = info->method() == nullptr ? "" : info->method();
    const google::protobuf::MethodDescriptor* method = FindMethod(path);
    if (method == nullptr) return new TimingInterceptor(durations_, "unknown");
    if (method->client_streaming() || method->server_streaming()) return nullptr;
    return new TimingInterceptor(durations_, std::string(absl::StripPrefix(path, "/")));
  }

 private:
  prometheus::Family<prometheus::Histogram>* const durations_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetricsInterceptors(
    prometheus::Registry& registry) {
  return std::make_unique<TimingInterceptorFactory>(registry);
}

}  // namespace kvtier
