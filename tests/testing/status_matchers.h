// Small status matchers (Abseil 20220623 ships none).
//
//   EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound, HasSubstr("acme")));
//   ASSERT_OK(s);  ASSERT_OK_AND_ASSIGN(auto v, StatusOrReturningCall());
#ifndef TREEZOR_BROKER_TESTS_TESTING_STATUS_MATCHERS_H_
#define TREEZOR_BROKER_TESTS_TESTING_STATUS_MATCHERS_H_

#include <ostream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace treezor::broker::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER_P2(StatusIs, code, message_matcher,
           "status code is " + ::testing::PrintToString(code)) {
  const absl::Status& s = GetStatus(arg);
  if (s.code() != code) {
    *result_listener << "whose status is " << s;
    return false;
  }
  return ::testing::ExplainMatchResult(message_matcher,
                                       std::string(s.message()),
                                       result_listener);
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "whose status is " << s;
  return s.ok();
}

}  // namespace treezor::broker::testing

#define ASSERT_OK(expr) \
  ASSERT_THAT((expr), ::treezor::broker::testing::IsOk())
#define EXPECT_OK(expr) \
  EXPECT_THAT((expr), ::treezor::broker::testing::IsOk())

#define TZB_CONCAT_INNER_(a, b) a##b
#define TZB_CONCAT_(a, b) TZB_CONCAT_INNER_(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                              \
  auto TZB_CONCAT_(statusor_, __LINE__) = (rexpr);                    \
  ASSERT_OK(TZB_CONCAT_(statusor_, __LINE__));                        \
  lhs = std::move(TZB_CONCAT_(statusor_, __LINE__)).value()

#endif  // TREEZOR_BROKER_TESTS_TESTING_STATUS_MATCHERS_H_
