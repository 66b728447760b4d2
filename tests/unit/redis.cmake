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
