/*
 * A gear in two versions (UPGRADE_VERSION 1 and 2), for the upgrade tests:
 * the same name, a different answer and a different state layout, so that
 * a connection answered by the wrong version, or a state read by the wrong
 * code, shows.
 *
 *   /upgrade/ws?name=N   takes N ("registered N" / "taken N")
 *   to:N:TEXT            sends TEXT to N ("sent N" / "not-found N")
 *   anything else        "v<version>:<message>"
 *   a message from another connection: "v<version>-got:<message>"
 */
#include <orrery/gear.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef UPGRADE_VERSION
#error "UPGRADE_VERSION 1 or 2"
#endif

typedef struct state {
#if UPGRADE_VERSION == 2
    char pad[40]; /* v2's layout differs: v1's state read as v2's would be garbage */
#endif
    unsigned magic;
} state;
#define MAGIC (0x5eed0000u + UPGRADE_VERSION)

static int reply(orr_conn *c, const char *fmt, const void *p, size_t len) {
    char buf[600];
    int n = snprintf(buf, sizeof buf, fmt, UPGRADE_VERSION, (int)(len > 500 ? 500 : len),
                     (const char *)p);
    return orr_conn_send_text(c, buf, (size_t)n);
}

static int init(orr_conn *c, void **st) {
    state *s = calloc(1, sizeof *s);
    if (!s) return ORR_ENOMEM;
    s->magic = MAGIC;
    *st = s;
    const orr_handshake *hs = orr_conn_handshake(c);
    const char *name = hs ? orr_hs_query(hs, "name") : NULL;
    return name && *name ? orr_unique_register(c, name, strlen(name), 0) : 0;
}

static int message(orr_conn *c, void **st, int opcode, const uint8_t *data, size_t len) {
    (void)opcode;
    if (((state *)*st)->magic != MAGIC) return ORR_EFAIL; /* the wrong version's state */
    if (len > 3 && memcmp(data, "to:", 3) == 0) {
        const char *name = (const char *)data + 3, *colon = memchr(name, ':', len - 3);
        if (colon)
            return orr_unique_send(c, name, (size_t)(colon - name), colon + 1,
                                   len - 3 - (size_t)(colon - name) - 1, 0);
    }
    return reply(c, "v%d:%.*s", data, len);
}

static int server_message(orr_conn *c, void **st, const uint8_t *msg, size_t len) {
    if (((state *)*st)->magic != MAGIC) return ORR_EFAIL;
    return reply(c, "v%d-got:%.*s", msg, len);
}

static int result(orr_conn *c, void **st, const orr_registry_result *r) {
    (void)st;
    const char *word = r->op == ORR_OP_UNIQUE_REGISTER ? (r->status ? "taken" : "registered")
                                                       : (r->status ? "not-found" : "sent");
    char buf[300];
    int n = snprintf(buf, sizeof buf, "%s %.*s", word, (int)r->name_len, r->name);
    return orr_conn_send_text(c, buf, (size_t)n);
}

static void terminate(orr_conn *c, void *st, const orr_reason *r) {
    (void)c;
    (void)r;
    free(st);
}

static const orr_ws_callbacks callbacks = {.init = init,
                                           .on_client_message = message,
                                           .on_server_message = server_message,
                                           .on_registry_result = result,
                                           .terminate = terminate};
static const orr_ws_route routes[] = {{"/ws", &callbacks}};
static const orr_gear gear = {
    .api_version = ORR_GEAR_API_VERSION,
    .name = "upgrade",
    .ws_routes = routes,
    .n_ws_routes = 1,
};

const orr_gear *orr_gear_entry(void) {
    return &gear;
}
