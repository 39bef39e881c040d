#include "server/curl_handle_pool.h"

#include "gtest/gtest.h"

namespace treezor::broker::internal {
namespace {

class CurlHandlePoolTest : public ::testing::Test {
 protected:
  void SetUp() override { InitCurlOnce(); }
};

TEST_F(CurlHandlePoolTest, ATenantGetsItsOwnIdleHandleBack) {
  CurlHandlePool pool(4);
  CURL* first = nullptr;
  {
    PooledHandle handle(&pool, 1);
    ASSERT_NE(handle.get(), nullptr);
    first = handle.get();
  }
  EXPECT_EQ(pool.idle(), 1u);
  {
    PooledHandle again(&pool, 1);
    EXPECT_EQ(again.get(), first);
    EXPECT_EQ(pool.idle(), 0u);
  }
}

TEST_F(CurlHandlePoolTest, HandlesAreNeverSharedBetweenTenants) {
  CurlHandlePool pool(4);
  { PooledHandle handle(&pool, 1); }
  {
    PooledHandle other(&pool, 2);  // a new handle: tenant 1's stays idle
    ASSERT_NE(other.get(), nullptr);
    EXPECT_EQ(pool.idle(), 1u);
  }
  EXPECT_EQ(pool.idle(), 2u);
}

TEST_F(CurlHandlePoolTest, IdleHandlesAreBoundedLeastRecentlyUsedFirst) {
  CurlHandlePool pool(2);
  pool.Return(1, CurlHandle(curl_easy_init()));
  pool.Return(2, CurlHandle(curl_easy_init()));
  pool.Return(3, CurlHandle(curl_easy_init()));
  EXPECT_EQ(pool.idle(), 2u);
  // Tenant 1's, the least recently used, was closed.
  CurlHandle one = pool.Take(1);
  EXPECT_EQ(pool.idle(), 2u);
  CurlHandle two = pool.Take(2);
  CurlHandle three = pool.Take(3);
  EXPECT_EQ(pool.idle(), 0u);
}

TEST_F(CurlHandlePoolTest, DropClosesOnlyThatTenantsHandles) {
  CurlHandlePool pool(4);
  pool.Return(1, CurlHandle(curl_easy_init()));
  pool.Return(1, CurlHandle(curl_easy_init()));
  pool.Return(2, CurlHandle(curl_easy_init()));
  pool.Drop(1);
  EXPECT_EQ(pool.idle(), 1u);
}

}  // namespace
}  // namespace treezor::broker::internal
