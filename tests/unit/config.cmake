# src/config: the config loader, its position scanner and listen parsing.
orr_unit_test(test_config ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_config.c)
# The test loads config/orrery.example.json from the source tree.
target_compile_definitions(test_config PRIVATE ORR_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
