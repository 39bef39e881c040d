#include "server/token_request_body.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/logging.h"

namespace treezor::broker {
namespace {

using internal::AppendHeader;
using internal::CurlSecretString;
using internal::MimePartSource;

absl::Status EncodeForm(CURL* curl, const Params& params, EncodedBody* out) {
  for (const Param& param : params) {
    const CurlSecretString name(curl_easy_escape(
        curl, param.name.data(), static_cast<int>(param.name.size())));
    const absl::string_view value = param.value.view();
    const CurlSecretString escaped(
        curl_easy_escape(curl, value.data(), static_cast<int>(value.size())));
    if (name == nullptr || escaped == nullptr) {
      return absl::InternalError("cannot form-encode the request");
    }
    if (!out->data.empty()) out->data.Append("&");
    out->data.Append(name.get());
    out->data.Append("=");
    out->data.Append(escaped.get());
  }
  AppendHeader(out->headers,
               "Content-Type: application/x-www-form-urlencoded");
  return absl::OkStatus();
}

size_t ReadPart(char* buffer, size_t size, size_t count, void* arg) {
  auto* source = static_cast<MimePartSource*>(arg);
  const absl::string_view rest = source->bytes.view().substr(
      std::min(source->position, source->bytes.view().size()));
  const size_t n = std::min(rest.size(), size * count);
  std::memcpy(buffer, rest.data(), n);
  source->position += n;
  return n;
}

int SeekPart(void* arg, curl_off_t offset, int origin) {
  auto* source = static_cast<MimePartSource*>(arg);
  const auto size = static_cast<curl_off_t>(source->bytes.view().size());
  const curl_off_t base = origin == SEEK_SET   ? 0
                          : origin == SEEK_CUR ? static_cast<curl_off_t>(
                                                     source->position)
                                               : size;
  const curl_off_t target = base + offset;
  if (target < 0 || target > size) return CURL_SEEKFUNC_FAIL;
  source->position = static_cast<size_t>(target);
  return CURL_SEEKFUNC_OK;
}

absl::Status EncodeMultipart(CURL* curl, const Params& params,
                             EncodedBody* out) {
  out->mime.reset(curl_mime_init(curl));
  if (out->mime == nullptr) {
    return absl::InternalError("cannot build the multipart request");
  }
  for (const Param& param : params) {
    auto source = std::make_unique<MimePartSource>();
    source->bytes = Secret(param.value.view());
    const auto size = static_cast<curl_off_t>(source->bytes.view().size());
    curl_mimepart* part = curl_mime_addpart(out->mime.get());
    // No free function: the body owns the source (and libcurl's copy of the
    // part for CURLOPT_MIMEPOST shares it).
    if (part == nullptr || curl_mime_name(part, param.name.c_str()) != CURLE_OK ||
        curl_mime_data_cb(part, size, &ReadPart, &SeekPart, nullptr,
                          source.get()) != CURLE_OK) {
      return absl::InternalError("cannot build the multipart request");
    }
    out->parts.push_back(std::move(source));
  }
  return absl::OkStatus();  // curl sets the multipart Content-Type itself
}

absl::Status EncodeJson(const Params& params, EncodedBody* out) {
  // At most 6 bytes per byte escaped ("\u00XX"), the quotes, ':' and ','.
  size_t bound = 2;
  for (const Param& param : params) {
    bound += 6 * (param.name.size() + param.value.view().size()) + 6;
  }
  std::string json;
  json.reserve(bound);
  json.push_back('{');
  for (const Param& param : params) {
    if (json.size() > 1) json.push_back(',');
    internal::AppendJsonString(param.name, &json);
    json.push_back(':');
    internal::AppendJsonString(param.value.view(), &json);
  }
  json.push_back('}');
  out->data = Secret(json);
  CleanseString(&json);
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
