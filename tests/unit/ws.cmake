# RFC 6455 framing and the streaming UTF-8 validator (src/ws).
orr_unit_test(test_utf8 ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_utf8.c)
orr_unit_test(test_frame ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_frame.c)
orr_unit_test(test_frame_limits ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_frame_limits.c)
orr_unit_test(test_frame_writer ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_frame_writer.c)
orr_unit_test(test_deflate ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_deflate.c)
