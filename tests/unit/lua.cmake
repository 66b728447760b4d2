# src/lua: sandboxed Lua states (tests/unit/test_lua.c).
orr_unit_test(test_lua ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_lua.c)
target_sources(test_lua PRIVATE ${PROJECT_SOURCE_DIR}/src/lua/sandbox.c)
target_link_libraries(test_lua PRIVATE PkgConfig::LUA)
