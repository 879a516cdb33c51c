// The tier over TLS and mTLS, with certificates made by openssl for the test: a client that
// trusts the tier's CA computes attention through it; a plaintext client, a client without a
// certificate where one is required, and one whose certificate another CA signed are refused;
// with mTLS the certificate alone can be the credential.
#include <memory>
#include <random>
#include <string>

#include "client/client.h"
#include "client/session.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/service/tier_harness.h"
#include "tests/test_pki.h"

namespace kvtier::test {
namespace {

using ::testing::HasSubstr;

class TierTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TestPki> pki = MakeTestPki();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
  }

  // A two-shard tier serving TLS with the test's server certificate.
  void StartTier(bool require_client_cert, std::shared_ptr<const Principals> principals) {
    LocalTierOptions options = FastTier(TestModel("m", 2, 4, 2, DType::kBF16, 64));
    options.security = ServerSecurity{.tls = Read(pki_.server),
                                      .require_client_cert = require_client_cert,
                                      .principals = std::move(principals)};
    absl::StatusOr<std::unique_ptr<LocalTier>> local = LocalTier::Start(options);
    ASSERT_TRUE(local.ok()) << local.status();
    local_ = *std::move(local);
  }

  std::unique_ptr<Client> ClientWith(TlsCredentials tls) {
    ClientOptions options;
    options.coordinator_address = local_->coordinator_address();
    options.control_deadline = absl::Seconds(5);
    options.step_deadline = absl::Seconds(20);
    options.security.tls = std::move(tls);
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  // Opens an acme session and checks two steps' attention against the reference.
  absl::Status OpenAndStep(Client& client) {
    absl::StatusOr<std::unique_ptr<Session>> opened = client.OpenSession(TestModelId("m"), "acme");
    if (!opened.ok()) return opened.status();
    CheckedSession session = Checked(*std::move(opened));
    std::mt19937_64 rng(FreshSeed());
    if (absl::Status status = CheckedStep(client, {&session}, {5}, rng); !status.ok()) {
      return status;
    }
    return CheckedStep(client, {&session}, {1}, rng);
  }

  TestPki pki_;
  std::unique_ptr<LocalTier> local_;
};

TEST_F(TierTlsTest, ClientTrustingTheCaComputesAttention) {
  StartTier(/*require_client_cert=*/false, nullptr);
  std::unique_ptr<Client> client =
      ClientWith({.cert_chain = "", .private_key = "", .root_certs = Read(pki_.server).root_certs});
  EXPECT_TRUE(OpenAndStep(*client).ok());
}

TEST_F(TierTlsTest, PlaintextClientIsRefusedCleanly) {
  StartTier(/*require_client_cert=*/false, nullptr);
  std::unique_ptr<Client> plaintext = ClientWith({});
  absl::StatusOr<std::unique_ptr<Session>> opened =
      plaintext->OpenSession(TestModelId("m"), "acme");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kUnavailable) << opened.status();
}

TEST_F(TierTlsTest, ClientThatTrustsAnotherCaIsRefused) {
  StartTier(/*require_client_cert=*/false, nullptr);
  TlsCredentials stranger = Read(pki_.stranger);
  std::unique_ptr<Client> client =
      ClientWith({.cert_chain = "", .private_key = "", .root_certs = stranger.cert_chain});
  EXPECT_EQ(client->OpenSession(TestModelId("m"), "acme").status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(TierTlsTest, MutualTlsRefusesClientsWithoutATrustedCertificate) {
  StartTier(/*require_client_cert=*/true, nullptr);
  const std::string roots = Read(pki_.server).root_certs;
  std::unique_ptr<Client> anonymous =
      ClientWith({.cert_chain = "", .private_key = "", .root_certs = roots});
  EXPECT_EQ(anonymous->OpenSession(TestModelId("m"), "acme").status().code(),
            absl::StatusCode::kUnavailable);
  std::unique_ptr<Client> stranger = ClientWith(Read(pki_.stranger));
  EXPECT_EQ(stranger->OpenSession(TestModelId("m"), "acme").status().code(),
            absl::StatusCode::kUnavailable);
  std::unique_ptr<Client> trusted = ClientWith(Read(pki_.client));
  EXPECT_TRUE(OpenAndStep(*trusted).ok());
}

TEST_F(TierTlsTest, ClientCertificateIsTheCredential) {
  absl::StatusOr<Principals> principals = Principals::Parse("cert:frontend-acme frontend acme\n");
  ASSERT_TRUE(principals.ok()) << principals.status();
  StartTier(/*require_client_cert=*/true,
            std::make_shared<const Principals>(*std::move(principals)));
  std::unique_ptr<Client> acme = ClientWith(Read(pki_.client));
  EXPECT_TRUE(OpenAndStep(*acme).ok());
  absl::StatusOr<std::unique_ptr<Session>> posing = acme->OpenSession(TestModelId("m"), "globex");
  EXPECT_EQ(posing.status().code(), absl::StatusCode::kPermissionDenied) << posing.status();
  EXPECT_THAT(posing.status().message(), HasSubstr("cert:frontend-a"));
}

}  // namespace
}  // namespace kvtier::test
