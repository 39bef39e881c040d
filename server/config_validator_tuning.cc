// The tuning sections of config validation (see config_validator.h):
// `renewal` and `upstream`.
#include "server/config_validator.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/config_field_checks.h"
#include "server/settings.h"
#include "server/settings_resolver.h"

namespace treezor::broker::internal {
namespace {

// The longest a request to Treezor may take: beyond it a caller waiting for a
// cold token has long given up, and a hung connection holds a worker.
constexpr absl::Duration kMaxRequestTimeout = absl::Seconds(120);

// A token must live at least 1s to count (0 would accept the 1 ms tokens
// that made the broker hammer Treezor); a floor above 10 min could refuse
// ordinary Treezor tokens (1 h).
constexpr absl::Duration kMinMinTokenLifetime = absl::Seconds(1);
constexpr absl::Duration kMaxMinTokenLifetime = absl::Minutes(10);
// Rejected-token reports: at least 1s between fetches (0 would let any caller
// force one request to Treezor per RPC), at most 5 min (after a real
// revocation, callers wait up to this long for a fresh token).
constexpr absl::Duration kMinRejectedTokenInterval = absl::Seconds(1);
constexpr absl::Duration kMaxRejectedTokenInterval = absl::Minutes(5);

// Where a cross-field rule of `section` is broken: the field the user wrote
// (`first` when it is set, else `second`).
std::string Blame(absl::string_view section, bool first_set,
                  absl::string_view first, absl::string_view second) {
  return absl::StrCat(section, ".", first_set ? first : second);
}

// A value in a cross-field message, saying when it is the default.
template <typename T>
std::string Shown(bool set, const T& value) {
  return absl::StrCat(value, set ? "" : ", the default");
}

}  // namespace

void ValidateRenewal(const v1::BrokerConfig& config, ConfigProblems& problems) {
  const v1::Renewal& r = config.renewal();
  const RenewalSettings s = ResolveSettings(config).renewal;
  auto either = [](bool first_set, const char* first, const char* second) {
    return Blame("renewal", first_set, first, second);
  };
  auto shown = [](bool set, auto value) { return Shown(set, value); };

  if (r.has_renew_remaining_fraction() &&
      !(s.renew_remaining_fraction > 0 && s.renew_remaining_fraction < 1)) {
    problems.Add(
        "renewal.renewRemainingFraction",
        absl::StrCat("must be in (0, 1), got ", s.renew_remaining_fraction));
  } else if (!(s.jitter_fraction >= 0 &&
               s.jitter_fraction < s.renew_remaining_fraction)) {
    problems.Add(either(r.has_jitter_fraction(), "jitterFraction",
                        "renewRemainingFraction"),
                 absl::StrCat("jitterFraction (",
                              shown(r.has_jitter_fraction(), s.jitter_fraction),
                              ") must be in [0, renewRemainingFraction (",
                              shown(r.has_renew_remaining_fraction(),
                                    s.renew_remaining_fraction),
                              "))"));
  }
  if (r.has_min_remaining_fraction() &&
      !(s.min_remaining_fraction >= 0 && s.min_remaining_fraction < 1)) {
    problems.Add(
        "renewal.minRemainingFraction",
        absl::StrCat("must be in [0, 1), got ", s.min_remaining_fraction));
  }
  if (r.has_min_remaining() && s.min_remaining < absl::ZeroDuration()) {
    problems.Add("renewal.minRemaining",
                 absl::StrCat("must not be negative, got ",
                              absl::FormatDuration(s.min_remaining)));
  }
  if (r.has_idle_timeout()) {
    RequirePositive("renewal.idleTimeout", r.idle_timeout(), problems);
  }
  if (r.has_initial_backoff()) {
    RequirePositive("renewal.initialBackoff", r.initial_backoff(), problems);
  }
  if (r.has_max_backoff()) {
    RequirePositive("renewal.maxBackoff", r.max_backoff(), problems);
  }
  if (r.has_refused_backoff()) {
    RequirePositive("renewal.refusedBackoff", r.refused_backoff(), problems);
  }
  if (r.has_refresh_token_max_age()) {
    RequirePositive("renewal.refreshTokenMaxAge", r.refresh_token_max_age(),
                    problems);
  }
  if (r.has_min_token_lifetime()) {
    RequireDurationIn("renewal.minTokenLifetime", r.min_token_lifetime(),
                      kMinMinTokenLifetime, kMaxMinTokenLifetime, problems);
  }
  if (r.has_rejected_token_min_interval()) {
    RequireDurationIn("renewal.rejectedTokenMinInterval",
                      r.rejected_token_min_interval(),
                      kMinRejectedTokenInterval, kMaxRejectedTokenInterval,
                      problems);
  }
  if (s.initial_backoff > absl::ZeroDuration() &&
      s.max_backoff < s.initial_backoff) {
    problems.Add(either(r.has_max_backoff(), "maxBackoff", "initialBackoff"),
                 absl::StrCat("maxBackoff (",
                              shown(r.has_max_backoff(),
                                    absl::FormatDuration(s.max_backoff)),
                              ") must not be less than initialBackoff (",
                              shown(r.has_initial_backoff(),
                                    absl::FormatDuration(s.initial_backoff)),
                              ")"));
  }
}

void ValidateUpstream(const v1::BrokerConfig& config,
                      ConfigProblems& problems) {
  const v1::Upstream& u = config.upstream();
  if (u.has_max_concurrent_requests() &&
      (u.max_concurrent_requests() < 1 || u.max_concurrent_requests() > 1024)) {
    problems.Add("upstream.maxConcurrentRequests",
                 absl::StrCat("must be in [1, 1024], got ",
                              u.max_concurrent_requests()));
  }
  if (u.has_connect_timeout()) {
    RequirePositive("upstream.connectTimeout", u.connect_timeout(), problems);
  }
  if (u.has_request_timeout()) {
    RequirePositive("upstream.requestTimeout", u.request_timeout(), problems);
  }
  const UpstreamSettings s = ResolveSettings(config).upstream;
  if (s.connect_timeout <= absl::ZeroDuration() ||
      s.request_timeout <= absl::ZeroDuration()) {
    return;  // said above
  }
  if (s.connect_timeout > s.request_timeout) {
    problems.Add(
        Blame("upstream", u.has_connect_timeout(), "connectTimeout",
              "requestTimeout"),
        absl::StrCat("connectTimeout (",
                     Shown(u.has_connect_timeout(),
                           absl::FormatDuration(s.connect_timeout)),
                     ") must not exceed requestTimeout (",
                     Shown(u.has_request_timeout(),
                           absl::FormatDuration(s.request_timeout)),
                     "): the request includes the connection"));
  }
  if (s.request_timeout > kMaxRequestTimeout) {
    problems.Add("upstream.requestTimeout",
                 absl::StrCat("must be at most ",
                              absl::FormatDuration(kMaxRequestTimeout),
                              ", got ",
                              absl::FormatDuration(s.request_timeout)));
  }
}

}  // namespace treezor::broker::internal
