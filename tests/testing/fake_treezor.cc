#include "tests/testing/fake_treezor.h"

#include <httplib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/pem.h"
#include "common/token_digest.h"
#include "server/logging.h"

namespace treezor::broker::testing {

namespace fake_treezor_internal {

// What the handler decided to answer.
struct FakeTreezorReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool drop = false;         // close the connection instead of answering
  std::string error;         // for the record; empty when a token is issued
  std::string access_token;  // issued by a grant
};

}  // namespace fake_treezor_internal

namespace {

using Reply = fake_treezor_internal::FakeTreezorReply;
using Params = std::map<std::string, std::string>;

constexpr char kTokenPath[] = "/oauth/token";

// --- JSON out

// Builds one flat JSON object.
class JsonObject {
 public:
  JsonObject& Add(absl::string_view key, absl::string_view value) {
    Key(key);
    broker::internal::AppendJsonString(value, &out_);
    return *this;
  }
  JsonObject& AddInt(absl::string_view key, int64_t value) {
    Key(key);
    absl::StrAppend(&out_, value);
    return *this;
  }
  // `json` is inserted as is.
  JsonObject& AddRaw(absl::string_view key, absl::string_view json) {
    Key(key);
    absl::StrAppend(&out_, json);
    return *this;
  }
  std::string Build() const { return out_ + "}"; }

 private:
  void Key(absl::string_view key) {
    if (out_.size() > 1) out_.push_back(',');
    broker::internal::AppendJsonString(key, &out_);
    out_.push_back(':');
  }
  std::string out_ = "{";
};

// --- Request bodies in

absl::StatusOr<std::string> PercentDecode(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out.push_back(' ');
    } else if (in[i] != '%') {
      out.push_back(in[i]);
    } else if (i + 2 < in.size() && absl::ascii_isxdigit(in[i + 1]) &&
               absl::ascii_isxdigit(in[i + 2])) {
      out.append(absl::HexStringToBytes(in.substr(i + 1, 2)));
      i += 2;
    } else {
      return absl::InvalidArgumentError("bad percent-escape in form body");
    }
  }
  return out;
}

absl::StatusOr<Params> ParseForm(absl::string_view body) {
  Params params;
  for (absl::string_view field : absl::StrSplit(body, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(field, absl::MaxSplits('=', 1));
    absl::StatusOr<std::string> key = PercentDecode(kv.first);
    absl::StatusOr<std::string> value = PercentDecode(kv.second);
    if (!key.ok()) return key.status();
    if (!value.ok()) return value.status();
    params[*key] = *value;
  }
  return params;
}

// Parses a JSON object whose values are all scalars (what a token request
// carries). Numbers and true/false keep their literal text; null becomes "".
class FlatJsonParser {
 public:
  explicit FlatJsonParser(absl::string_view in) : in_(in) {}

  absl::StatusOr<Params> Parse() {
    Params params;
    if (!Consume('{')) return Error("expected '{'");
    if (Consume('}')) return Finish(std::move(params));
    while (true) {
      std::optional<std::string> key = String();
      if (!key) return Error("expected a string key");
      if (!Consume(':')) return Error("expected ':'");
      std::optional<std::string> value = Scalar();
      if (!value) return Error("expected a string, number or literal value");
      params[*key] = *std::move(value);
      if (Consume(',')) continue;
      if (Consume('}')) return Finish(std::move(params));
      return Error("expected ',' or '}'");
    }
  }

 private:
  absl::StatusOr<Params> Finish(Params params) {
    SkipSpace();
    if (!in_.empty()) return Error("trailing characters");
    return params;
  }
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("JSON body: ", what, " at offset ", offset()));
  }
  size_t offset() const { return original_size_ - in_.size(); }

  void SkipSpace() {
    while (!in_.empty() && absl::ascii_isspace(in_.front())) {
      in_.remove_prefix(1);
    }
  }
  bool Consume(char c) {
    SkipSpace();
    if (in_.empty() || in_.front() != c) return false;
    in_.remove_prefix(1);
    return true;
  }

  std::optional<std::string> Scalar() {
    SkipSpace();
    if (!in_.empty() && in_.front() == '"') return String();
    size_t n = 0;
    while (n < in_.size() && (absl::ascii_isalnum(in_[n]) || in_[n] == '-' ||
                              in_[n] == '+' || in_[n] == '.')) {
      ++n;
    }
    std::string token(in_.substr(0, n));
    in_.remove_prefix(n);
    if (token == "null") return std::string();
    if (token == "true" || token == "false") return token;
    double ignored;
    if (!token.empty() && absl::SimpleAtod(token, &ignored)) return token;
    return std::nullopt;
  }

  std::optional<std::string> String() {
    if (!Consume('"')) return std::nullopt;
    std::string out;
    while (!in_.empty()) {
      const char c = in_.front();
      in_.remove_prefix(1);
      if (c == '"') return out;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (in_.empty()) return std::nullopt;
      const char e = in_.front();
      in_.remove_prefix(1);
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out.push_back(e);
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u':
          if (!UnicodeEscape(&out)) return std::nullopt;
          break;
        default:
          return std::nullopt;
      }
    }
    return std::nullopt;
  }

  // After "\u": four hex digits (and a low surrogate's if needed) as UTF-8.
  bool UnicodeEscape(std::string* out) {
    std::optional<uint32_t> cp = Hex4();
    if (!cp) return false;
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
      if (!absl::ConsumePrefix(&in_, "\\u")) return false;
      std::optional<uint32_t> low = Hex4();
      if (!low || *low < 0xDC00 || *low > 0xDFFF) return false;
      cp = 0x10000 + ((*cp - 0xD800) << 10) + (*low - 0xDC00);
    }
    AppendUtf8(*cp, out);
    return true;
  }
  std::optional<uint32_t> Hex4() {
    if (in_.size() < 4) return std::nullopt;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = in_[i];
      if (!absl::ascii_isxdigit(h)) return std::nullopt;
      v = v * 16 +
          static_cast<uint32_t>(absl::ascii_isdigit(h)
                                    ? h - '0'
                                    : absl::ascii_tolower(h) - 'a' + 10);
    }
    in_.remove_prefix(4);
    return v;
  }
  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  absl::string_view in_;
  const size_t original_size_ = in_.size();
};

// "Multipart/Form-Data; boundary=x" -> "multipart/form-data".
std::string MediaType(absl::string_view content_type) {
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(content_type, absl::MaxSplits(';', 1));
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(parts.first));
}

absl::StatusOr<Params> ParseBody(const httplib::Request& req,
                                 const std::string& media_type) {
  if (media_type == "application/x-www-form-urlencoded") {
    return ParseForm(req.body);
  }
  if (media_type == "application/json") {
    return FlatJsonParser(req.body).Parse();
  }
  if (media_type == "multipart/form-data") {
    Params params;
    for (const auto& [name, part] : req.files) params[name] = part.content;
    return params;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported Content-Type \"", media_type, "\""));
}

std::string Lookup(const Params& params, const std::string& key) {
  auto it = params.find(key);
  return it == params.end() ? std::string() : it->second;
}

// --- TLS

std::string PeerCommonName(const SSL* ssl) {
  if (ssl == nullptr) return "";
  X509Ptr cert(SSL_get1_peer_certificate(ssl));
  if (cert == nullptr) return "";
  X509_NAME* name = X509_get_subject_name(cert.get());
  const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return "";
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(
      &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
  if (len < 0) return "";
  std::string cn(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return cn;
}

// Shuts the TCP connection down under httplib's feet: the client reads EOF
// before any byte of an answer, and httplib's own write of the (unused)
// response then fails quietly (httplib ignores SIGPIPE).
void DropConnection(const httplib::Request& req) {
  const int fd = req.ssl != nullptr ? SSL_get_fd(req.ssl) : -1;
  if (fd >= 0) shutdown(fd, SHUT_RDWR);
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()),
             static_cast<int>(raw.size()));
  return absl::BytesToHexString(raw);
}

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
       &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

// --- Replies

// RFC 6749 §5.2.
Reply OAuthError(int status, absl::string_view code,
                 absl::string_view description) {
  Reply reply;
  reply.status = status;
  reply.error = std::string(code);
  reply.body = JsonObject()
                   .Add("error", code)
                   .Add("error_description", description)
                   .Build();
  return reply;
}

Reply InvalidClient() {
  return OAuthError(401, "invalid_client", "Client authentication failed");
}

// Treezor's documented error shape.
Reply TreezorError() {
  Reply reply;
  reply.status = 400;
  reply.error = "invalid_request";
  const std::string error =
      JsonObject()
          .Add("type", "invalid_request")
          .Add("code", "input_validation_error")
          .Add("message", "The request is invalid (injected by fake Treezor)")
          .Add("docUrl",
               "https://docs.treezor.com/guide/api-basics/"
               "response-codes.html")
          .Build();
  reply.body = JsonObject().AddRaw("errors", "[" + error + "]").Build();
  return reply;
}

Reply TextReply(int status, absl::string_view text) {
  Reply reply;
  reply.status = status;
  reply.content_type = "text/plain";
  reply.body = std::string(text);
  return reply;
}

const char* FaultName(FakeTreezor::Fault::Kind kind) {
  using Fault = FakeTreezor::Fault;
  switch (kind) {
    case Fault::kHttpStatus:
      return "http_status";
    case Fault::kTooManyRequests:
      return "too_many_requests";
    case Fault::kHang:
      return "hang";
    case Fault::kGarbage:
      return "garbage";
    case Fault::kEmpty200:
      return "empty_200";
    case Fault::kDropConnection:
      return "drop_connection";
    case Fault::kInvalidClient:
      return "invalid_client";
    case Fault::kTreezorErrorShape:
      return "treezor_error_shape";
    case Fault::kBadTokenType:
      return "bad_token_type";
    case Fault::kZeroExpiresIn:
      return "zero_expires_in";
    case Fault::kEchoRequest:
      return "echo_request";
  }
  return "unknown";
}

// httplib 0.11 listens with a backlog of 5: a burst of concurrent clients
// overflows it and the extra SYNs are retried a second later. Listening
// again on the bound socket raises the backlog.
class TokenServer final : public httplib::SSLServer {
 public:
  using SSLServer::SSLServer;
  void WidenBacklog() { ::listen(svr_sock_, SOMAXCONN); }
};

void WriteReply(const Reply& reply, httplib::Response& res) {
  res.status = reply.status;
  for (const auto& [name, value] : reply.headers) res.set_header(name, value);
  res.set_content(reply.body, reply.content_type);
}

}  // namespace

// --- Fault

FakeTreezor::Fault FakeTreezor::Fault::Status(int http_status) {
  Fault fault;
  fault.kind = kHttpStatus;
  fault.http_status = http_status;
  return fault;
}

FakeTreezor::Fault FakeTreezor::Fault::TooManyRequests(
    int retry_after_seconds) {
  Fault fault;
  fault.kind = kTooManyRequests;
  fault.http_status = 429;
  fault.retry_after_seconds = retry_after_seconds;
  return fault;
}

FakeTreezor::Fault FakeTreezor::Fault::Hang(absl::Duration at_most,
                                            bool then_drop) {
  Fault fault;
  fault.kind = kHang;
  fault.hang = at_most;
  fault.drop_after_hang = then_drop;
  return fault;
}

FakeTreezor::Fault FakeTreezor::Fault::Of(Kind kind) {
  Fault fault;
  fault.kind = kind;
  return fault;
}

FakeTreezor::Fault FakeTreezor::Fault::EchoRequest(Echo description, Echo code,
                                                   int http_status) {
  Fault fault;
  fault.kind = kEchoRequest;
  fault.http_status = http_status;
  fault.echo_description = std::move(description);
  fault.echo_code = std::move(code);
  return fault;
}

// --- Life cycle

FakeTreezor::FakeTreezor(Options options)
    : options_(std::move(options)),
      instance_id_(RandomHex(4)),
      client_secret_(options_.client_secret),
      token_lifetime_(options_.token_lifetime),
      jwt_exp_offset_(options_.jwt_exp_offset) {}

FakeTreezor::~FakeTreezor() { Stop(); }

absl::StatusOr<std::unique_ptr<FakeTreezor>> FakeTreezor::Start(
    Options options) {
  for (const std::string* file :
       {&options.cert_file, &options.key_file, &options.client_ca_file}) {
    if (file->empty() || access(file->c_str(), R_OK) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fake Treezor: cannot read \"", *file,
          "\" (cert_file, key_file and client_ca_file are required)"));
    }
  }
  if (options.clock == nullptr) options.clock = SystemClock::Get();
  if (options.worker_threads < 1) options.worker_threads = 1;
  std::unique_ptr<FakeTreezor> fake(new FakeTreezor(std::move(options)));
  if (absl::Status s = fake->Listen(); !s.ok()) return s;
  return fake;
}

absl::Status FakeTreezor::Listen() {
  auto server = std::make_unique<TokenServer>(options_.cert_file.c_str(),
                                              options_.key_file.c_str(),
                                              options_.client_ca_file.c_str());
  if (!server->is_valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("fake Treezor: cannot load TLS material (cert ",
                     options_.cert_file, ", key ", options_.key_file,
                     ", client CA ", options_.client_ca_file, ")"));
  }
  const int workers = options_.worker_threads;
  // httplib takes ownership of the raw pointer.
  server->new_task_queue = [workers] {
    return new httplib::ThreadPool(workers);
  };
  // httplib's default sets SO_REUSEPORT, which lets a second server "bind"
  // a busy port and steal its traffic; plain SO_REUSEADDR fails loudly.
  server->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  if (!options_.keep_alive) server->set_keep_alive_max_count(1);
  server->Post(kTokenPath,
               [this](const httplib::Request& req, httplib::Response& res) {
                 HandleToken(req, res);
               });

  if (options_.port == 0) {
    port_ = server->bind_to_any_port(options_.host);
  } else {
    port_ =
        server->bind_to_port(options_.host, options_.port) ? options_.port : -1;
  }
  if (port_ <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "fake Treezor: cannot bind ", options_.host, ":", options_.port));
  }
  server->WidenBacklog();
  server_ = std::move(server);
  return RunListener();
}

absl::Status FakeTreezor::RunListener() {
  listener_ = std::thread([this] {
    server_->listen_after_bind();
    listener_exited_ = true;
  });
  // httplib 0.11 has no wait_until_ready(), and stop() is a no-op until the
  // listener runs: wait for it here so that Stop() always works.
  while (!server_->is_running() && !listener_exited_) {
    std::this_thread::yield();
  }
  if (listener_exited_) {
    return absl::InternalError("fake Treezor: the listener exited at start");
  }
  return absl::OkStatus();
}

void FakeTreezor::Stop() {
  std::call_once(stop_once_, [this] {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      cv_.SignalAll();
    }
    if (server_ != nullptr) server_->stop();
    if (listener_.joinable()) listener_.join();
  });
}

std::string FakeTreezor::base_url() const {
  // The address actually bound, not "localhost": that name may resolve to
  // ::1 first, where another process may hold the same port number.
  const std::string& host = options_.host;
  if (host.empty() || host == "0.0.0.0" || host == "::") {
    return absl::StrCat("https://127.0.0.1:", port_);
  }
  if (host.find(':') != std::string::npos) {
    return absl::StrCat("https://[", host, "]:", port_);
  }
  return absl::StrCat("https://", host, ":", port_);
}

// --- The handler

void FakeTreezor::HandleToken(const httplib::Request& req,
                              httplib::Response& res) {
  ReceivedRequest received;
  received.content_type = MediaType(req.get_header_value("Content-Type"));
  received.client_cert_cn = PeerCommonName(req.ssl);
  absl::StatusOr<Params> params = ParseBody(req, received.content_type);
  if (params.ok()) {
    received.params = *params;
    received.grant_type = Lookup(*params, "grant_type");
  }
  const size_t index = Admit(std::move(received));
  WaitAtGate();
  const Reply reply = Respond(params, req.body, TakeFault());
  const ReceivedRequest answered = Finish(index, reply);
  if (reply.drop) {
    DropConnection(req);
  } else {
    WriteReply(reply, res);
  }
  if (options_.on_answered) options_.on_answered(answered);
}

size_t FakeTreezor::Admit(ReceivedRequest request) {
  MutexLock lock(&mu_);
  requests_.push_back(std::move(request));
  ++in_flight_;
  max_in_flight_ = std::max(max_in_flight_, in_flight_);
  cv_.SignalAll();
  return requests_.size() - 1;
}

void FakeTreezor::WaitAtGate() {
  MutexLock lock(&mu_);
  if (!holding_ || stopping_) return;
  ++held_;
  cv_.SignalAll();
  while (holding_ && !stopping_) cv_.Wait(&mu_);
  --held_;
  cv_.SignalAll();
}

std::optional<FakeTreezor::Fault> FakeTreezor::TakeFault() {
  MutexLock lock(&mu_);
  if (faults_.empty()) return persistent_fault_;
  Fault fault = faults_.front();
  faults_.pop_front();
  return fault;
}

void FakeTreezor::Hang(absl::Duration at_most) {
  MutexLock lock(&mu_);
  const int64_t generation = hang_release_generation_;
  ++hanging_;
  cv_.SignalAll();
  cv_.WaitUntil(&mu_, absl::Now() + at_most,
                [this, generation]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                  return hang_release_generation_ != generation || stopping_;
                });
  --hanging_;
  cv_.SignalAll();
}

FakeTreezor::Reply FakeTreezor::Respond(const absl::StatusOr<Params>& params,
                                        absl::string_view raw_body,
                                        const std::optional<Fault>& fault) {
  if (fault.has_value() && fault->kind != Fault::kHang) {
    EchoInput request{params.ok() ? *params : Params(), std::string(raw_body)};
    return FaultReply(*fault, request);
  }
  if (fault.has_value()) {
    Hang(fault->hang);
    if (fault->drop_after_hang) {
      return FaultReply(Fault::Of(Fault::kDropConnection), {});
    }
  }
  if (!params.ok()) {
    return OAuthError(400, "invalid_request", params.status().message());
  }
  return Grant(*params);
}

FakeTreezor::Reply FakeTreezor::FaultReply(const Fault& fault,
                                           const EchoInput& request) {
  Reply reply;
  switch (fault.kind) {
    case Fault::kHttpStatus:
      reply = TextReply(fault.http_status,
                        absl::StrCat("fake Treezor: injected HTTP ",
                                     fault.http_status, "\n"));
      break;
    case Fault::kTooManyRequests:
      reply = TextReply(429, "fake Treezor: too many requests\n");
      reply.headers.emplace_back("Retry-After",
                                 absl::StrCat(fault.retry_after_seconds));
      break;
    case Fault::kHang:  // handled by Respond(); never reaches here
    case Fault::kDropConnection:
      reply.drop = true;
      break;
    case Fault::kGarbage:
      reply = TextReply(200, "<html><body>Service Unavailable</body></html>");
      reply.content_type = "text/html";
      break;
    case Fault::kEmpty200:
      break;  // 200, application/json, empty body
    case Fault::kInvalidClient:
      reply = InvalidClient();
      break;
    case Fault::kTreezorErrorShape:
      reply = TreezorError();
      break;
    case Fault::kEchoRequest: {
      const std::string code = fault.echo_code ? fault.echo_code(request)
                                               : std::string("invalid_client");
      const std::string description =
          fault.echo_description ? fault.echo_description(request) : "";
      if (fault.treezor_shape) {
        reply.status = fault.http_status;
        const std::string error = JsonObject()
                                      .Add("type", code)
                                      .Add("message", description)
                                      .Build();
        reply.body = JsonObject().AddRaw("errors", "[" + error + "]").Build();
      } else {
        reply = OAuthError(fault.http_status, code, description);
      }
      break;
    }
    case Fault::kBadTokenType:
    case Fault::kZeroExpiresIn: {
      MutexLock lock(&mu_);
      const bool bad_type = fault.kind == Fault::kBadTokenType;
      std::string ignored;
      reply.body = TokenBodyLocked(
          {}, bad_type ? "MAC" : "Bearer",
          bad_type ? absl::ToInt64Seconds(token_lifetime_) : 0, &ignored);
      break;
    }
  }
  reply.error = absl::StrCat("fault:", FaultName(fault.kind));
  return reply;
}

// --- Grants

FakeTreezor::Reply FakeTreezor::Grant(const Params& params) {
  const std::string grant_type = Lookup(params, "grant_type");
  MutexLock lock(&mu_);
  if (grant_type == "client_credentials") {
    return ClientCredentialsGrantLocked(params);
  }
  if (grant_type == "password") return PasswordGrantLocked(params);
  if (grant_type == "refresh_token") return RefreshTokenGrantLocked(params);
  return OAuthError(
      400, "unsupported_grant_type",
      grant_type.empty()
          ? std::string("grant_type is missing")
          : absl::StrCat("grant_type \"", grant_type, "\" is not supported"));
}

bool FakeTreezor::ClientAuthenticatedLocked(const Params& params) const {
  return Lookup(params, "client_id") == options_.client_id &&
         Lookup(params, "client_secret") == client_secret_;
}

FakeTreezor::Reply FakeTreezor::ClientCredentialsGrantLocked(
    const Params& params) {
  if (!ClientAuthenticatedLocked(params)) return InvalidClient();
  return IssueTokenLocked(params, /*with_refresh_token=*/false);
}

FakeTreezor::Reply FakeTreezor::PasswordGrantLocked(const Params& params) {
  if (!ClientAuthenticatedLocked(params)) return InvalidClient();
  if (options_.username.empty()) {
    return OAuthError(400, "unauthorized_client",
                      "The password grant is not enabled for this client");
  }
  if (Lookup(params, "username") != options_.username ||
      Lookup(params, "password") != options_.password) {
    return OAuthError(400, "invalid_grant", "Invalid username or password");
  }
  return IssueTokenLocked(params, /*with_refresh_token=*/true);
}

// Treezor's example sends no secret with a refresh: check it only if sent.
FakeTreezor::Reply FakeTreezor::RefreshTokenGrantLocked(const Params& params) {
  if (Lookup(params, "client_id") != options_.client_id ||
      (params.count("client_secret") > 0 &&
       Lookup(params, "client_secret") != client_secret_)) {
    return InvalidClient();
  }
  auto it = live_refresh_tokens_.find(Lookup(params, "refresh_token"));
  if (it == live_refresh_tokens_.end()) {
    return OAuthError(400, "invalid_grant",
                      "The refresh token is invalid, expired or already used");
  }
  live_refresh_tokens_.erase(it);  // rotation: each refresh token works once
  return IssueTokenLocked(params, /*with_refresh_token=*/true);
}

FakeTreezor::Reply FakeTreezor::IssueTokenLocked(const Params& params,
                                                 bool with_refresh_token) {
  Reply reply;
  std::string refresh_token;
  if (with_refresh_token) {
    refresh_token = absl::StrCat("fake-refresh-", NewOpaqueIdLocked());
    live_refresh_tokens_.insert(refresh_token);
    last_refresh_token_ = refresh_token;
  }
  reply.body =
      TokenBodyLocked(params, "Bearer", absl::ToInt64Seconds(token_lifetime_),
                      &reply.access_token, refresh_token);
  reply.headers.emplace_back("Cache-Control", "no-store");
  last_access_token_ = reply.access_token;
  ++token_count_;
  return reply;
}

std::string FakeTreezor::TokenBodyLocked(const Params& params,
                                         absl::string_view token_type,
                                         int64_t expires_in,
                                         std::string* access_token,
                                         absl::string_view refresh_token) {
  *access_token = MakeJwtLocked(Lookup(params, "scope"));
  JsonObject body;
  body.Add("token_type", token_type)
      .AddInt("expires_in", expires_in)
      .Add("access_token", *access_token);
  if (!refresh_token.empty()) body.Add("refresh_token", refresh_token);
  return body.Build();
}

std::string FakeTreezor::MakeJwtLocked(const std::string& scope) {
  const absl::Time now = options_.clock->Now();
  const std::string header =
      JsonObject().Add("alg", "HS256").Add("typ", "JWT").Build();
  const std::string payload =
      JsonObject()
          .Add("iss", "fake-treezor")
          .Add("sub", options_.client_id)
          .Add("scope", scope)
          .AddInt("iat", absl::ToUnixSeconds(now))
          .AddInt("exp",
                  absl::ToUnixSeconds(now + token_lifetime_ + jwt_exp_offset_))
          .Add("jti", NewOpaqueIdLocked())
          .Build();
  const std::string signing_input =
      absl::StrCat(absl::WebSafeBase64Escape(header), ".",
                   absl::WebSafeBase64Escape(payload));
  return absl::StrCat(signing_input, ".",
                      absl::WebSafeBase64Escape(
                          HmacSha256(options_.signing_key, signing_input)));
}

std::string FakeTreezor::NewOpaqueIdLocked() {
  return absl::StrCat(instance_id_, "-", next_token_id_++);
}

ReceivedRequest FakeTreezor::Finish(size_t index, const Reply& reply) {
  MutexLock lock(&mu_);
  --in_flight_;
  ReceivedRequest& request = requests_[index];
  request.dropped = reply.drop;
  request.http_status = reply.drop ? 0 : reply.status;
  request.error = reply.error;
  if (!reply.access_token.empty()) {
    request.access_token_fingerprint = TokenFingerprint(reply.access_token);
  }
  cv_.SignalAll();
  return request;
}

// --- Test controls and observation

void FakeTreezor::PushFault(Fault fault) {
  MutexLock lock(&mu_);
  faults_.push_back(fault);
}

void FakeTreezor::SetPersistentFault(std::optional<Fault> fault) {
  MutexLock lock(&mu_);
  persistent_fault_ = fault;
}

void FakeTreezor::ReleaseHangs() {
  MutexLock lock(&mu_);
  ++hang_release_generation_;
  cv_.SignalAll();
}

bool FakeTreezor::WaitForHanging(int n, absl::Duration timeout) const {
  MutexLock lock(&mu_);
  return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                       [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                         return hanging_ >= n;
                       });
}

void FakeTreezor::HoldRequests() {
  MutexLock lock(&mu_);
  holding_ = true;
}

void FakeTreezor::ReleaseRequests() {
  MutexLock lock(&mu_);
  holding_ = false;
  cv_.SignalAll();
}

bool FakeTreezor::WaitForHeld(int n, absl::Duration timeout) const {
  MutexLock lock(&mu_);
  return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                       [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                         return held_ >= n;
                       });
}

void FakeTreezor::SetClientSecret(std::string secret) {
  MutexLock lock(&mu_);
  client_secret_ = std::move(secret);
}

void FakeTreezor::SetTokenLifetime(absl::Duration lifetime) {
  MutexLock lock(&mu_);
  token_lifetime_ = lifetime;
}

void FakeTreezor::SetJwtExpOffset(absl::Duration offset) {
  MutexLock lock(&mu_);
  jwt_exp_offset_ = offset;
}

void FakeTreezor::InvalidateRefreshTokens() {
  MutexLock lock(&mu_);
  live_refresh_tokens_.clear();
}

int FakeTreezor::request_count() const {
  MutexLock lock(&mu_);
  return static_cast<int>(requests_.size());
}

int FakeTreezor::token_count() const {
  MutexLock lock(&mu_);
  return token_count_;
}

int FakeTreezor::max_in_flight() const {
  MutexLock lock(&mu_);
  return max_in_flight_;
}

std::vector<ReceivedRequest> FakeTreezor::requests() const {
  MutexLock lock(&mu_);
  return requests_;
}

bool FakeTreezor::WaitForRequests(int n, absl::Duration timeout) const {
  MutexLock lock(&mu_);
  return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                       [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                         return static_cast<int>(requests_.size()) >= n;
                       });
}

bool FakeTreezor::WaitForRequestsWhere(
    int n, std::function<bool(const ReceivedRequest&)> match,
    absl::Duration timeout) const {
  MutexLock lock(&mu_);
  return cv_.WaitUntil(
      &mu_, absl::Now() + timeout, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return std::count_if(requests_.begin(), requests_.end(), match) >= n;
      });
}

std::function<bool(const ReceivedRequest&)> FakeTreezor::WithScope(
    std::string scope) {
  return [scope = std::move(scope)](const ReceivedRequest& r) {
    auto it = r.params.find("scope");
    return it == r.params.end() ? scope.empty() : it->second == scope;
  };
}

std::string FakeTreezor::last_access_token() const {
  MutexLock lock(&mu_);
  return last_access_token_;
}

std::string FakeTreezor::last_refresh_token() const {
  MutexLock lock(&mu_);
  return last_refresh_token_;
}

}  // namespace treezor::broker::testing
