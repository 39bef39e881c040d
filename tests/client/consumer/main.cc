// Links against the installed library and exercises it without a network:
// prints the version, checks the token digest (client/token_digest.h, which
// forwards to the installed common/ library), then checks that creating a
// client with a missing CA file is the documented INVALID_ARGUMENT naming the
// file.
#include <cstdio>
#include <cstring>

#include "client/token_client.h"
#include "client/token_digest.h"

int main(int argc, char** argv) {
  std::printf("treezor-token-broker client %s\n", treezor::client::Version());
  if (argc > 1 && std::strcmp(argv[1], "--version") == 0) return 0;
  if (treezor::client::TokenFingerprint("abc") != "ba7816bf8f01") {
    std::printf("unexpected fingerprint\n");
    return 1;
  }
  treezor::client::TokenClientOptions options;
  options.connection.address = "127.0.0.1:1";
  options.connection.ca_file = "/nonexistent/ca.crt";
  options.connection.cert_file = "/nonexistent/tls.crt";
  options.connection.key_file = "/nonexistent/tls.key";
  auto client = treezor::client::TokenClient::Create(options);
  if (client.ok() ||
      client.status().code() != absl::StatusCode::kInvalidArgument ||
      client.status().message().find("/nonexistent/ca.crt") ==
          absl::string_view::npos) {
    std::printf("unexpected: %s\n", client.status().ToString().c_str());
    return 1;
  }
  std::printf("smoke: %s\n", client.status().ToString().c_str());
  return 0;
}
