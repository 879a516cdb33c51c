#include "proto/wire/transport_security.h"

#include <fstream>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/client_interceptor.h"

namespace kvtier {
namespace {

// The PEM text of `path` (empty: none) into `out`; `field` names the flag in errors.
absl::Status ReadPem(absl::string_view field, const std::string& path, std::string* out) {
  if (path.empty()) return absl::OkStatus();
  std::ifstream file(path);
  if (!file) return absl::InvalidArgumentError(absl::StrCat(field, ": cannot read ", path));
  std::stringstream text;
  text << file.rdbuf();
  *out = text.str();
  if (!absl::StrContains(*out, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", path, " holds no PEM block"));
  }
  return absl::OkStatus();
}

// Adds the bearer token to every call's initial metadata.
class BearerToken final : public grpc::experimental::Interceptor {
 public:
  explicit BearerToken(const std::string* header) : header_(header) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", *header_);
    }
    methods->Proceed();
  }

 private:
  const std::string* const header_;  // owned by the factory, which the channel keeps
};

class BearerTokenFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenFactory(absl::string_view token) : header_(absl::StrCat("Bearer ", token)) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerToken(&header_);
  }

 private:
  const std::string header_;
};

absl::Status CheckKeyPair(const TlsCredentials& tls) {
  if (tls.cert_chain.empty() == tls.private_key.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "tls_cert_file, tls_key_file: a certificate and its key go together");
}

}  // namespace

absl::StatusOr<TlsCredentials> ReadTlsFiles(const TlsFiles& files) {
  TlsCredentials tls;
  for (auto [field, path, out] : {std::tuple{"tls_cert_file", &files.cert_file, &tls.cert_chain},
                                  std::tuple{"tls_key_file", &files.key_file, &tls.private_key},
                                  std::tuple{"tls_ca_file", &files.ca_file, &tls.root_certs}}) {
    if (absl::Status status = ReadPem(field, *path, out); !status.ok()) return status;
  }
  if (absl::Status status = CheckKeyPair(tls); !status.ok()) return status;
  return tls;
}

absl::Status CheckServerSecurity(const ServerSecurity& security) {
  if (absl::Status status = CheckKeyPair(security.tls); !status.ok()) return status;
  if (security.require_client_cert &&
      (security.tls.cert_chain.empty() || security.tls.root_certs.empty())) {
    return absl::InvalidArgumentError(
        "tls_require_client_cert: needs the server's certificate (tls_cert_file) and the roots "
        "that verify clients (tls_ca_file)");
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const ServerSecurity& security) {
  if (security.tls.cert_chain.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      security.tls.root_certs.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
      : security.require_client_cert  ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                      : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = security.tls.root_certs;
  options.pem_key_cert_pairs.push_back({security.tls.private_key, security.tls.cert_chain});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::Channel> OpenChannel(const std::string& target,
                                           const ChannelSecurity& security,
                                           const grpc::ChannelArguments& args) {
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      security.tls.any() ? grpc::SslCredentials({security.tls.root_certs, security.tls.private_key,
                                                 security.tls.cert_chain})
                         : grpc::InsecureChannelCredentials();
  if (security.token.empty()) return grpc::CreateCustomChannel(target, credentials, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<BearerTokenFactory>(security.token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(target, credentials, args,
                                                                 std::move(interceptors));
}

}  // namespace kvtier
