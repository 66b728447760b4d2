# src/conn alone: its own sources, the gear API's conn_api.c (a gear that
# echoes), the event loop and src/tls (below it, with OpenSSL), with a fake host and no server
# (tests/unit/test_conn.c). Linking nothing else shows the seam holds.
orr_unit_test(test_conn ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_conn.c)
file(GLOB ORR_CONN_SRC CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/conn/*.c)
target_sources(test_conn PRIVATE ${ORR_CONN_SRC} ${PROJECT_SOURCE_DIR}/src/gearapi/conn_api.c
                                 ${PROJECT_SOURCE_DIR}/src/loop/loop.c ${PROJECT_SOURCE_DIR}/src/loop/xq.c
                                 ${PROJECT_SOURCE_DIR}/src/tls/tls.c)
target_link_libraries(test_conn PRIVATE OpenSSL::SSL)
