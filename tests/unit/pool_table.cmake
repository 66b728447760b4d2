# src/server/pool_table.c: the executor pools' name -> idx table. It is part of
# orrery_server, not orrery_core, so the test builds its source in.
orr_unit_test(test_pool_table ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_pool_table.c)
target_sources(test_pool_table PRIVATE ${PROJECT_SOURCE_DIR}/src/server/pool_table.c)
