# Unit tests of src/http: request heads, the websocket upgrade, the router, the push API's paths
# and pool names.
orr_unit_test(test_request ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_request.c)
orr_unit_test(test_websocket_upgrade ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_websocket_upgrade.c)
orr_unit_test(test_router ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_router.c)
orr_unit_test(test_push_path ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_push_path.c)
orr_unit_test(test_origin ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_origin.c)
orr_unit_test(test_deflate_offer ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_deflate_offer.c)
