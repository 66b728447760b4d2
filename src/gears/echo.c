/* The echo gear: every message goes back with its opcode. */
#include <orrery/gear.h>

static int echo_message(orr_conn *c, void **state, int opcode, const uint8_t *data, size_t len) {
    (void)state;
    return opcode == ORR_TEXT ? orr_conn_send_text(c, data, len)
                              : orr_conn_send_binary(c, data, len);
}

static const orr_ws_callbacks echo_callbacks = {
    .on_client_message = echo_message,
};

static const orr_ws_route echo_routes[] = {{"/ws", &echo_callbacks}};

static const orr_gear gear = {
    .api_version = ORR_GEAR_API_VERSION,
    .name = "echo",
    .ws_routes = echo_routes,
    .n_ws_routes = 1,
};

const orr_gear *orr_gear_entry(void) {
    return &gear;
}
