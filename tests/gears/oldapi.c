/*
 * A gear built against gear API 3.0 (tests/gears/api_3_0/orrery/gear.h, a
 * copy of the header as it was before 3.1 added orr_gear's on_load and
 * on_unload): its orr_gear is shorter than the server's. It must load and
 * run on a 3.1 server, which reads no field past what 3.0 had.
 */
#include <orrery/gear.h>

#include <stdio.h>

#if ORR_GEAR_API_MINOR != 0
#error "oldapi.c must be built against the 3.0 header"
#endif

/* Answers each message with "old:" and the message. */
static int message(orr_conn *c, void **state, int opcode, const uint8_t *data, size_t len) {
    (void)state;
    (void)opcode;
    char buf[256];
    int n = snprintf(buf, sizeof buf, "old:%.*s", (int)(len > 200 ? 200 : len), (const char *)data);
    return orr_conn_send_text(c, buf, (size_t)n);
}

static const orr_ws_callbacks callbacks = {.on_client_message = message};
static const orr_ws_route routes[] = {{"/ws", &callbacks}};

/* Bytes right after the 3.0 struct: if a server read on_load or on_unload
 * from here, it would call these (not functions) and crash. */
static const struct {
    orr_gear gear;
    const char *past_the_end[2];
} old = {
    .gear =
        {
            .api_version = ORR_GEAR_API_VERSION,
            .name = "oldapi",
            .ws_routes = routes,
            .n_ws_routes = 1,
        },
    .past_the_end = {"not on_load", "not on_unload"},
};

/* The 3.0 header did not declare it yet. */
__attribute__((visibility("default"))) const orr_gear *orr_gear_entry(void);
const orr_gear *orr_gear_entry(void) {
    return &old.gear;
}
