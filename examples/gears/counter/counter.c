/*
 * counter: an Orrery gear built outside the server's tree, against the
 * installed SDK (see README.md).
 *
 * Each connection keeps a count of the messages it got, from its client and
 * from other connections. Open /counter/ws?name=NAME to take NAME in the
 * registry; then, from any connection of the gear:
 *
 *   anything           -> "count N"             (N counts this message)
 *   to NAME TEXT       -> "count N", and NAME's connection gets TEXT
 *                         ("from-peer TEXT", and its own count goes up)
 *
 * Registry answers come back as "registered NAME", "taken NAME", "sent NAME"
 * or "not-found NAME". The gear's config, gear_config.counter in the
 * server's config, may set where counts start: {"start": 100}.
 */
#include <orrery/gear.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long start_at; /* from gear_config.counter.start */

typedef struct counter {
    long count;
} counter;

static int on_load(const char *config_json, size_t len) {
    (void)len;
    const char *p = strstr(config_json, "\"start\":");
    start_at = p ? strtol(p + 8, NULL, 10) : 0;
    return start_at < 0 ? -1 : 0; /* a negative start is refused */
}

/* "<word> <text>" to the client (text cut at 400 bytes). */
static int reply(orr_conn *c, const char *word, const char *text, size_t len) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s %.*s", word, (int)(len > 400 ? 400 : len), text);
    return orr_conn_send_text(c, buf, (size_t)n);
}

static int reply_count(orr_conn *c, const counter *k) {
    char num[24];
    int n = snprintf(num, sizeof num, "%ld", k->count);
    return reply(c, "count", num, (size_t)n);
}

static int init(orr_conn *c, void **state) {
    counter *k = calloc(1, sizeof *k);
    if (!k) return ORR_ENOMEM;
    k->count = start_at;
    *state = k;
    const orr_handshake *hs = orr_conn_handshake(c);
    const char *name = hs ? orr_hs_query(hs, "name") : NULL;
    if (name && *name) return orr_unique_register(c, name, strlen(name), 0);
    return 0;
}

static int on_client_message(orr_conn *c, void **state, int opcode, const uint8_t *data,
                             size_t len) {
    (void)opcode;
    counter *k = *state;
    k->count++;
    if (len > 3 && memcmp(data, "to ", 3) == 0) {
        const char *name = (const char *)data + 3;
        const char *sp = memchr(name, ' ', len - 3);
        if (sp) {
            size_t nlen = (size_t)(sp - name);
            int rc = orr_unique_send(c, name, nlen, sp + 1, len - 3 - nlen - 1, 0);
            if (rc) return rc;
        }
    }
    return reply_count(c, k);
}

static int on_server_message(orr_conn *c, void **state, const uint8_t *msg, size_t len) {
    counter *k = *state;
    k->count++;
    return reply(c, "from-peer", (const char *)msg, len);
}

static int on_registry_result(orr_conn *c, void **state, const orr_registry_result *r) {
    (void)state;
    const char *what = r->op == ORR_OP_UNIQUE_REGISTER ? (r->status ? "taken" : "registered")
                       : r->op == ORR_OP_UNIQUE_SEND   ? (r->status ? "not-found" : "sent")
                                                       : "done";
    return reply(c, what, r->name, r->name_len);
}

static void terminate(orr_conn *c, void *state, const orr_reason *r) {
    (void)c;
    (void)r;
    free(state);
}

static const orr_ws_callbacks callbacks = {
    .init = init,
    .on_client_message = on_client_message,
    .on_server_message = on_server_message,
    .on_registry_result = on_registry_result,
    .terminate = terminate,
};

static const orr_ws_route routes[] = {{"/ws", &callbacks}};

static const orr_gear gear = {
    .api_version = ORR_GEAR_API_VERSION,
    .name = "counter",
    .ws_routes = routes,
    .n_ws_routes = 1,
    .on_load = on_load,
};

const orr_gear *orr_gear_entry(void) {
    return &gear;
}
