# src/config: the config loader (core keys, "pools", "cluster", "tls" and Redis
# addresses), its position scanner and listen parsing. Shared helpers are in
# tests/support/config_files.h.
foreach(t test_config test_config_pools test_config_cluster test_config_tls test_jsonpos)
  orr_unit_test(${t} ${CMAKE_CURRENT_SOURCE_DIR}/unit/${t}.c)
  # test_config loads config/orrery.example.json from the source tree.
  target_compile_definitions(${t} PRIVATE ORR_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endforeach()
