// The identities of a gRPC caller, as Policy matches them against
// `callers[].identity` and `admins[].identity`.
//
// They come from the caller's certificate as verified by the TLS handshake
// against serverTls.clientCaFile: every URI SAN (e.g. a SPIFFE ID), every DNS
// SAN, then the subject CN — deduplicated, in that order. Email and IP SANs
// are ignored: no config names callers that way, and an IP says where a call
// comes from, not who makes it. The CA is trusted for all three kinds alike,
// so a config entry matches whichever kind carries its string.
//
// Thread-safety: a pure function of its argument.
#ifndef TREEZOR_BROKER_SERVER_PEER_IDENTITY_H_
#define TREEZOR_BROKER_SERVER_PEER_IDENTITY_H_

#include <string>
#include <vector>

#include "grpcpp/security/auth_context.h"

namespace treezor::broker {

// Empty unless `context` is authenticated (a verified client certificate).
std::vector<std::string> PeerIdentities(const grpc::AuthContext& context);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_PEER_IDENTITY_H_
