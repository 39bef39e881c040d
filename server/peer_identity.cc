#include "server/peer_identity.h"

#include <algorithm>

#include "grpc/grpc_security_constants.h"

namespace treezor::broker {

std::vector<std::string> PeerIdentities(const grpc::AuthContext& context) {
  std::vector<std::string> identities;
  if (!context.IsPeerAuthenticated()) return identities;
  for (const char* property :
       {GRPC_PEER_URI_PROPERTY_NAME, GRPC_PEER_DNS_PROPERTY_NAME,
        GRPC_X509_CN_PROPERTY_NAME}) {
    for (const grpc::string_ref& value : context.FindPropertyValues(property)) {
      std::string identity(value.data(), value.size());
      if (identity.empty() || std::find(identities.begin(), identities.end(),
                                        identity) != identities.end()) {
        continue;
      }
      identities.push_back(std::move(identity));
    }
  }
  return identities;
}

}  // namespace treezor::broker
