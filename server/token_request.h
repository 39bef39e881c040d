// What one token request to Treezor sends: the grant, and the parameters in
// the order they are encoded, with the tenant's secrets read now.
//
//   absl::StatusOr<TokenRequest> request = BuildTokenRequest(tenant, fetch);
//   if (!request.ok()) return request.status();  // e.g. a missing secret
//   ... EncodeBody(curl, tenant, request->params) ...
//
// The grant: a non-empty FetchRequest.refresh_token selects refresh_token
// (client_id + refresh_token + scope, no secret, as in Treezor's example)
// whatever the tenant's grantType; otherwise the tenant's grantType
// (client_credentials by default, or password). Secrets (clientSecretFile /
// clientSecretEnv, usernameFile, passwordFile) are read at every call by
// server/secret_reader.h, as config validation reads them, so a rotated
// Kubernetes Secret is used by the next request.
//
// Errors are FAILED_PRECONDITION "tenant <name>: <field>: <problem>"
// (TenantError), naming config fields by their JSON names.
//
// Every buffer that held a secret is wiped after use: the secrets are read
// into Secrets and the parameters' values are Secrets (see Param); the
// encodings do the same (server/token_request_body.h).
//
// Thread-safety: pure functions apart from reading the secret files and
// variables.
#ifndef TREEZOR_BROKER_SERVER_TOKEN_REQUEST_H_
#define TREEZOR_BROKER_SERVER_TOKEN_REQUEST_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/secret_reader.h"
#include "server/secret_redactor.h"
#include "server/token_fetcher.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

enum class Grant { kClientCredentials, kPassword, kRefreshToken };

// The grant_type value sent for `grant`.
absl::string_view GrantName(Grant grant);

// One request parameter. Every value is held as a Secret (wiped when the
// request goes), whether or not it is one: the type makes it impossible to
// forget the client secret, the password or the refresh token.
struct Param {
  std::string name;
  Secret value;
};
using Params = std::vector<Param>;

struct TokenRequest {
  Grant grant = Grant::kClientCredentials;
  Params params;
  // Every secret sent (client secret, password, refresh token): none may
  // appear in a message or a log line, even if Treezor echoes it.
  SecretRedactor redactor;
};

absl::StatusOr<TokenRequest> BuildTokenRequest(const v1::Tenant& tenant,
                                               const FetchRequest& request);

// "tenant <tenant>: <what>": how every error of a token request starts.
absl::Status TenantError(absl::StatusCode code, absl::string_view tenant,
                         absl::string_view what);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_TOKEN_REQUEST_H_
