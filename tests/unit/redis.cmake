# src/cluster/redis.c: the hiredis connection on an epoll loop, against a
# redis-server each test starts on a unix socket (Debian redis-server). It is
# part of the server, not orrery_core, so the test builds its source in.
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
orr_unit_test(test_redis ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_redis.c)
target_sources(test_redis PRIVATE ${PROJECT_SOURCE_DIR}/src/cluster/redis.c)
target_link_libraries(test_redis PRIVATE PkgConfig::HIREDIS Threads::Threads)
