# src/registry: the in-process registry of Unique names and Groups (and its
# parking). It is part of orrery_server, not orrery_core, so the tests build
# its sources in.
orr_unit_test(test_registry ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_registry.c)
target_sources(test_registry PRIVATE ${PROJECT_SOURCE_DIR}/src/registry/registry.c
                                     ${PROJECT_SOURCE_DIR}/src/registry/park.c)
target_link_libraries(test_registry PRIVATE Threads::Threads)
orr_unit_test(test_registry_park ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_registry_park.c)
target_sources(test_registry_park PRIVATE ${PROJECT_SOURCE_DIR}/src/registry/registry.c
                                          ${PROJECT_SOURCE_DIR}/src/registry/park.c)
target_link_libraries(test_registry_park PRIVATE Threads::Threads)
