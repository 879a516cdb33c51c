// The credentials file (principals.h): what it admits, as what, and every way a line is
// refused, naming the line.
#include "proto/wire/principals.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

TEST(PrincipalsTest, ParsesEveryKindOfCredential) {
  const std::string token = NewToken();
  absl::StatusOr<Principals> principals =
      Principals::Parse(absl::StrCat("# credential  roles  tenants\n"
                                     "\n"
                                     "sha256:",
                                     TokenHashHex(token),
                                     "  frontend  acme\n"
                                     "token:gateway\tfrontend\tacme,globex   # a gateway\n"
                                     "token:any frontend,admin *\n"
                                     "token:cluster shard,coordinator\n"
                                     "cert:ops.example admin\n"));
  ASSERT_TRUE(principals.ok()) << principals.status();
  EXPECT_EQ(principals->size(), 5);

  const Principal* acme = principals->ForToken(token);
  ASSERT_NE(acme, nullptr);
  EXPECT_TRUE(acme->ActsFor("acme"));
  EXPECT_FALSE(acme->ActsFor("globex"));
  EXPECT_FALSE(acme->Has(Role::kAdmin));
  EXPECT_THAT(acme->name, HasSubstr("credentials line 3"));

  const Principal* gateway = principals->ForToken("gateway");
  ASSERT_NE(gateway, nullptr);
  EXPECT_TRUE(gateway->ActsFor("acme") && gateway->ActsFor("globex"));
  EXPECT_FALSE(gateway->ActsFor("initech"));

  const Principal* any = principals->ForToken("any");
  ASSERT_NE(any, nullptr);
  EXPECT_TRUE(any->ActsFor("whoever") && any->Has(Role::kAdmin));
  EXPECT_EQ(any->RoleList(), "frontend,admin");

  const Principal* cluster = principals->ForToken("cluster");
  ASSERT_NE(cluster, nullptr);
  EXPECT_TRUE(cluster->Has(Role::kShard) && cluster->Has(Role::kCoordinator));
  EXPECT_FALSE(cluster->ActsFor("acme"));

  EXPECT_NE(principals->ForCertificateName("ops.example"), nullptr);
  EXPECT_EQ(principals->ForToken("ops.example"), nullptr);
  EXPECT_EQ(principals->ForToken(TokenHashHex(token)), nullptr);  // the hash is no token
  EXPECT_EQ(principals->ForToken(""), nullptr);
}

TEST(PrincipalsTest, RefusesBadLinesNamingThem) {
  const struct {
    std::string text;
    std::string error;
  } cases[] = {
      {"token:a frontend\n", "line 1: a frontend needs its tenants"},
      {"\ntoken:a shard acme\n", "line 2: tenants are for a frontend only"},
      {"token:a wizard\n", "line 1: unknown role \"wizard\""},
      {"token:a shard,shard\n", "role shard listed twice"},
      {"token:a\n", "expected: credential roles [tenants]"},
      {"token:a frontend acme extra\n", "expected: credential roles [tenants]"},
      {"password:a shard\n", "starts with sha256:, token: or cert:"},
      {"sha256:abc shard\n", "64 hex digits"},
      {"token: shard\n", "token: needs a token"},
      {"token:a shard\ntoken:a admin\n", "line 2: this token is listed already"},
      {absl::StrCat("token:a shard\nsha256:", TokenHashHex("a"), " admin\n"),
       "line 2: this token is listed already"},
      {"cert:x admin\ncert:x shard\n", "certificate name is listed already"},
      {"token:a frontend acme,,b\n", "expected 1..128 bytes"},
      {"token:a frontend acme,*\n", "or * alone"},
  };
  for (const auto& [text, error] : cases) {
    SCOPED_TRACE(text);
    absl::StatusOr<Principals> principals = Principals::Parse(text);
    EXPECT_EQ(principals.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(principals.status().message(), HasSubstr(error));
  }
}

TEST(PrincipalsTest, TokensAreFreshAndHashesAreSha256) {
  EXPECT_NE(NewToken(), NewToken());
  EXPECT_EQ(NewToken().size(), 64u);
  EXPECT_EQ(TokenHashHex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(PrincipalsTest, AddTokenRefusesATokenHeldAlready) {
  Principals principals;
  ASSERT_TRUE(
      principals
          .AddToken(
              "t",
              Principal{.name = "x", .roles = {Role::kShard}, .tenants = {}, .any_tenant = false})
          .ok());
  EXPECT_EQ(principals.AddToken("t", Principal{}).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_NE(principals.ForToken("t"), nullptr);
  EXPECT_EQ(principals.ForToken("t")->name, "x");
}

TEST(PrincipalsTest, FromFileNamesAMissingFile) {
  absl::StatusOr<Principals> principals = Principals::FromFile("/nonexistent/credentials");
  EXPECT_EQ(principals.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(principals.status().message(), HasSubstr("/nonexistent/credentials"));
}

}  // namespace
}  // namespace kvtier
