#include "client/cache_key.h"

#include "absl/container/flat_hash_map.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace treezor::client::internal {
namespace {

std::vector<std::string> Strings(absl::Span<const std::string* const> p) {
  std::vector<std::string> out;
  for (const std::string* s : p) out.push_back(*s);
  return out;
}

TEST(CanonicalScopes, SortsAndDeduplicatesWithoutCopying) {
  const std::vector<std::string> scopes = {"read_all", "admin", "read_all"};
  CanonicalScopes canonical(scopes);
  EXPECT_THAT(Strings(canonical.view()), ::testing::ElementsAre("admin", "read_all"));
  EXPECT_EQ(canonical.view()[0], &scopes[1]);  // points into the caller's list
}

TEST(CacheKey, AViewFindsTheEqualKeyWhateverTheOrder) {
  absl::flat_hash_map<CacheKey, int, CacheKeyHash, CacheKeyEq> map;
  map[CacheKey{"acme", {"admin", "read_all"}}] = 1;
  map[CacheKey{"acme", {}}] = 2;
  map[CacheKey{"globex", {"admin", "read_all"}}] = 3;
  const std::vector<std::string> asked = {"read_all", "admin", "admin"};
  CanonicalScopes canonical(asked);
  auto it = map.find(CacheKeyView{"acme", canonical.view()});
  ASSERT_NE(it, map.end());
  EXPECT_EQ(it->second, 1);
  CanonicalScopes none(std::vector<std::string>{});
  EXPECT_EQ(map.find(CacheKeyView{"acme", none.view()})->second, 2);
  const std::vector<std::string> one = {"admin"};
  CanonicalScopes partial(one);
  EXPECT_EQ(map.find(CacheKeyView{"acme", partial.view()}), map.end());
  EXPECT_EQ(CacheKey::From(CacheKeyView{"acme", canonical.view()}),
            (CacheKey{"acme", {"admin", "read_all"}}));
}

TEST(CacheKey, ScopeBoundariesMatter) {
  // {"ab"} and {"a", "b"} must not collide into one entry.
  absl::flat_hash_map<CacheKey, int, CacheKeyHash, CacheKeyEq> map;
  map[CacheKey{"acme", {"ab"}}] = 1;
  const std::vector<std::string> split = {"a", "b"};
  CanonicalScopes canonical(split);
  EXPECT_EQ(map.find(CacheKeyView{"acme", canonical.view()}), map.end());
}

}  // namespace
}  // namespace treezor::client::internal
