#include "tests/test_pki.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/wire/transport_security.h"
#include "tests/child_process.h"

namespace kvtier::test {
namespace {

// Runs openssl with `args`; INTERNAL with its stderr when it fails.
absl::Status OpenSsl(std::vector<std::string> args) {
  args.insert(args.begin(), "/usr/bin/openssl");
  ChildProcess child(args);
  child.RestOfOutput();
  if (child.Wait() == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("openssl ", args[1], ": ", child.ErrorOutput()));
}

// A CA named `name`: <dir>/<name>.key and <dir>/<name>.pem.
absl::Status MakeCa(const std::string& dir, const std::string& name) {
  return OpenSsl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-days", "2", "-subj", "/CN=" + name, "-keyout",
                  dir + "/" + name + ".key", "-out", dir + "/" + name + ".pem"});
}

// A certificate for `common_name`, signed by CA `ca`, with `extensions` (an openssl -extfile
// text): <dir>/<name>.key and <dir>/<name>.pem.
absl::Status MakeLeaf(const std::string& dir, const std::string& name, const std::string& ca,
                      const std::string& common_name, const std::string& extensions) {
  const std::string base = dir + "/" + name;
  if (absl::Status status =
          OpenSsl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                   "-subj", "/CN=" + common_name, "-keyout", base + ".key", "-out", base + ".csr"});
      !status.ok()) {
    return status;
  }
  FILE* file = std::fopen((base + ".ext").c_str(), "w");
  if (file == nullptr) return absl::InternalError(absl::StrCat("cannot write ", base, ".ext"));
  std::fputs(extensions.c_str(), file);
  std::fclose(file);
  return OpenSsl({"x509", "-req", "-in", base + ".csr", "-CA", dir + "/" + ca + ".pem", "-CAkey",
                  dir + "/" + ca + ".key", "-CAcreateserial", "-days", "2", "-extfile",
                  base + ".ext", "-out", base + ".pem"});
}

}  // namespace

absl::StatusOr<TestPki> MakeTestPki() {
  std::string dir_template = absl::StrCat(testing::TempDir(), "/kvtier-pki-XXXXXX");
  if (mkdtemp(dir_template.data()) == nullptr) {
    return absl::InternalError("mkdtemp: cannot make the PKI folder");
  }
  const std::string dir = dir_template;
  const std::string server_ext =
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n";
  const std::string client_ext = "extendedKeyUsage=clientAuth\n";
  for (absl::Status status :
       {MakeCa(dir, "ca"), MakeCa(dir, "stranger-ca"),
        MakeLeaf(dir, "server", "ca", "kvtier-server", server_ext),
        MakeLeaf(dir, "client", "ca", "frontend-acme", client_ext),
        MakeLeaf(dir, "stranger", "stranger-ca", "frontend-acme", client_ext)}) {
    if (!status.ok()) return status;
  }
  const std::string ca = dir + "/ca.pem";
  return TestPki{.dir = dir,
                 .server = {dir + "/server.pem", dir + "/server.key", ca},
                 .client = {dir + "/client.pem", dir + "/client.key", ca},
                 .stranger = {dir + "/stranger.pem", dir + "/stranger.key", ca}};
}

TlsCredentials Read(const TlsFiles& files) {
  absl::StatusOr<TlsCredentials> tls = ReadTlsFiles(files);
  EXPECT_TRUE(tls.ok()) << tls.status();
  return tls.ok() ? *tls : TlsCredentials{};
}

}  // namespace kvtier::test
