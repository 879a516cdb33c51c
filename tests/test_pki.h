// Test support: a throwaway PKI made with openssl (Debian's), as an operator would make one: a
// CA, a server certificate for 127.0.0.1 and localhost, client certificates with a common
// name, and a second CA that the tier does not trust. The files go to a fresh temporary
// folder.
#ifndef KVTIER_TESTS_TEST_PKI_H_
#define KVTIER_TESTS_TEST_PKI_H_

#include <string>

#include "absl/status/statusor.h"
#include "proto/wire/security_config.h"

namespace kvtier::test {

struct TestPki {
  std::string dir;
  TlsFiles server;    // the server's certificate and key, and the CA (to verify clients)
  TlsFiles client;    // a client certificate with common name "frontend-acme", and the CA
  TlsFiles stranger;  // a client certificate from the untrusted CA, and the trusted CA
};

// INTERNAL with openssl's output when a command fails.
absl::StatusOr<TestPki> MakeTestPki();

// The PEM text of `files` (fails the test when unreadable).
TlsCredentials Read(const TlsFiles& files);

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_TEST_PKI_H_
