# src/loop: the queue between threads. Part of orrery_server, so the test
# builds its source in.
orr_unit_test(test_xq ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_xq.c)
target_sources(test_xq PRIVATE ${PROJECT_SOURCE_DIR}/src/loop/xq.c)
target_link_libraries(test_xq PRIVATE Threads::Threads)
# src/loop/slots.c: connection ids.
orr_unit_test(test_slots ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_slots.c)
target_sources(test_slots PRIVATE ${PROJECT_SOURCE_DIR}/src/loop/slots.c)
# src/loop/tlist.h: timeout lists (header only).
orr_unit_test(test_tlist ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_tlist.c)
# The server layer on the test's thread: callback failures, output and
# backpressure, pool accounting (tests/unit/test_server.c).
orr_unit_test(test_server ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_server.c)
target_link_libraries(test_server PRIVATE orrery_server)
