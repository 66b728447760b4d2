# src/cluster/redis.c: the hiredis connection on an epoll loop, against a
# redis-server each test starts on a unix socket (Debian redis-server). It is
# part of the server, not orrery_core, so each test builds its source in. The
# server and loop harness is tests/support/redis_harness.h.
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
foreach(t test_redis test_redis_reconnect test_redis_pubsub)
  orr_unit_test(${t} ${CMAKE_CURRENT_SOURCE_DIR}/unit/${t}.c)
  target_sources(${t} PRIVATE ${PROJECT_SOURCE_DIR}/src/cluster/redis.c)
  target_link_libraries(${t} PRIVATE PkgConfig::HIREDIS Threads::Threads)
endforeach()
# The registry backend contract (registry/backend.h): local and cluster, the
# cluster against a redis-server of its own, through a fake delivery interface.
find_package(OpenSSL REQUIRED)
orr_unit_test(test_backend ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_backend.c)
target_sources(test_backend PRIVATE ${PROJECT_SOURCE_DIR}/src/registry/registry.c ${PROJECT_SOURCE_DIR}/src/registry/park.c
  ${PROJECT_SOURCE_DIR}/src/registry/local.c ${PROJECT_SOURCE_DIR}/src/cluster/cluster.c
  ${PROJECT_SOURCE_DIR}/src/cluster/cluster_life.c ${PROJECT_SOURCE_DIR}/src/cluster/redis.c
  ${PROJECT_SOURCE_DIR}/src/loop/xq.c ${PROJECT_SOURCE_DIR}/src/loop/loop.c)
target_link_libraries(test_backend PRIVATE PkgConfig::HIREDIS Threads::Threads OpenSSL::Crypto)
