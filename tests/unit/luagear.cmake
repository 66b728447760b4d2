# src/luagear: checking a Lua gear's file, runtimes and generations
# (tests/unit/test_luagear.c). It needs the server's library (the gear API
# its callbacks call), linked whole.
orr_unit_test(test_luagear ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_luagear.c)
target_link_libraries(test_luagear PRIVATE orrery_server)
