#include "server/token_request_body.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace treezor::broker {
namespace {

using internal::AppendHeader;
using internal::CurlString;

absl::Status EncodeForm(CURL* curl, const Params& params, EncodedBody* out) {
  std::vector<std::string> pairs;
  for (const auto& [key, value] : params) {
    CurlString k(curl_easy_escape(curl, key.data(), static_cast<int>(key.size())));
    CurlString v(
        curl_easy_escape(curl, value.data(), static_cast<int>(value.size())));
    if (k == nullptr || v == nullptr) {
      return absl::InternalError("cannot form-encode the request");
    }
    pairs.push_back(absl::StrCat(k.get(), "=", v.get()));
  }
  out->data = absl::StrJoin(pairs, "&");
  AppendHeader(out->headers,
               "Content-Type: application/x-www-form-urlencoded");
  return absl::OkStatus();
}

absl::Status EncodeMultipart(CURL* curl, const Params& params,
                             EncodedBody* out) {
  out->mime.reset(curl_mime_init(curl));
  if (out->mime == nullptr) {
    return absl::InternalError("cannot build the multipart request");
  }
  for (const auto& [key, value] : params) {
    curl_mimepart* part = curl_mime_addpart(out->mime.get());
    if (part == nullptr ||
        curl_mime_name(part, key.c_str()) != CURLE_OK ||
        curl_mime_data(part, value.data(), value.size()) != CURLE_OK) {
      return absl::InternalError("cannot build the multipart request");
    }
  }
  return absl::OkStatus();  // curl sets the multipart Content-Type itself
}

absl::Status EncodeJson(const Params& params, EncodedBody* out) {
  google::protobuf::Struct body;
  for (const auto& [key, value] : params) {
    (*body.mutable_fields())[key].set_string_value(value);
  }
  if (!google::protobuf::util::MessageToJsonString(body, &out->data).ok()) {
    return absl::InternalError("cannot JSON-encode the request");
  }
  AppendHeader(out->headers, "Content-Type: application/json");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EncodedBody> EncodeBody(CURL* curl, const v1::Tenant& tenant,
                                       const Params& params) {
  EncodedBody body;
  const std::string& encoding = tenant.request_encoding();
  absl::Status status;
  if (encoding.empty() || encoding == "form") {
    status = EncodeForm(curl, params, &body);
  } else if (encoding == "multipart") {
    status = EncodeMultipart(curl, params, &body);
  } else if (encoding == "json") {
    status = EncodeJson(params, &body);
  } else {
    return TenantError(absl::StatusCode::kFailedPrecondition, tenant.name(),
                       absl::StrCat("unsupported requestEncoding \"",
                                    encoding, "\""));
  }
  if (!status.ok()) {
    return TenantError(status.code(), tenant.name(), status.message());
  }
  AppendHeader(body.headers, "Accept: application/json");
  // No "Expect: 100-continue" round trip for a body of a few hundred bytes.
  AppendHeader(body.headers, "Expect:");
  return body;
}

}  // namespace treezor::broker
