#include "server/secret_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "openssl/crypto.h"
#include "server/quote.h"

namespace treezor::broker {
namespace {

constexpr absl::string_view kEmpty =
    " is empty (trailing whitespace does not count)";

absl::Status FieldError(absl::string_view field, absl::string_view problem) {
  return absl::FailedPreconditionError(absl::StrCat(field, ": ", problem));
}

}  // namespace

absl::StatusOr<Secret> ReadWholeFile(const std::string& file,
                                     size_t max_bytes) {
  const auto cannot_read = [&file](int err) {
    return absl::ErrnoToStatus(err, absl::StrCat("cannot read ", Quote(file)));
  };
  // O_NONBLOCK: a FIFO must not block us before fstat rejects it.
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return cannot_read(errno);
  absl::Cleanup close_fd = [fd] { close(fd); };
  struct stat st;
  if (fstat(fd, &st) != 0) return cannot_read(errno);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(file), " is not a regular file"));
  }
  const auto too_large = [&file, max_bytes] {
    return absl::InvalidArgumentError(absl::StrCat(
        Quote(file), " is larger than ", max_bytes, " bytes"));
  };
  if (st.st_size > 0 && static_cast<uint64_t>(st.st_size) > max_bytes) {
    return too_large();
  }
  Secret content;
  char buffer[4096];
  absl::Cleanup wipe_buffer = [&buffer] {
    OPENSSL_cleanse(buffer, sizeof buffer);
  };
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return cannot_read(errno);
    }
    if (static_cast<size_t>(n) > max_bytes - content.view().size()) {
      return too_large();
    }
    content.Append(absl::string_view(buffer, static_cast<size_t>(n)));
  }
  return content;
}

absl::StatusOr<Secret> ReadSecretFile(absl::string_view field,
                                      const std::string& file) {
  if (file.empty()) return FieldError(field, "required");
  absl::StatusOr<Secret> secret = ReadWholeFile(file, kMaxSecretFileBytes);
  if (!secret.ok()) return FieldError(field, secret.status().message());
  secret->TrimTrailingWhitespace();
  if (secret->empty()) {
    return FieldError(field, absl::StrCat(Quote(file), kEmpty));
  }
  return secret;
}

absl::StatusOr<Secret> ReadSecretEnv(absl::string_view field,
                                     const std::string& variable) {
  if (variable.empty()) return FieldError(field, "required");
  const char* value = std::getenv(variable.c_str());
  if (value == nullptr) {
    return FieldError(
        field, absl::StrCat("environment variable ", variable, " is not set"));
  }
  Secret secret{absl::string_view(value)};
  secret.TrimTrailingWhitespace();
  if (secret.empty()) {
    return FieldError(field,
                      absl::StrCat("environment variable ", variable, kEmpty));
  }
  return secret;
}

absl::StatusOr<Secret> ReadClientSecret(const v1::Tenant& tenant) {
  if (!tenant.client_secret_file().empty()) {
    return ReadSecretFile("clientSecretFile", tenant.client_secret_file());
  }
  if (!tenant.client_secret_env().empty()) {
    return ReadSecretEnv("clientSecretEnv", tenant.client_secret_env());
  }
  return FieldError("clientSecretFile", "required (or clientSecretEnv)");
}

}  // namespace treezor::broker
