/*
 * testgear: the gear our tests (and others') drive. Its handshake needs a
 * query parameter `name`; its text commands are:
 *   echo:<t>                 -> <t>
 *   noop                     -> nothing
 *   close:<code>:<reason>    -> the gear closes with that code and reason
 *   crash                    -> the callback fails (client sees an empty close)
 *   info                     -> JSON of what its handshake saw (the gear API's accessors)
 *   send:, join:, leave:, publish:  -> error:unsupported (registry not built yet)
 * Anything else answers error:unknown_command. Binary messages are echoed;
 * server messages are forwarded to the client as text. Routes: /ws, and
 * /rooms/:room/ followed by a wildcard `rest`, to exercise path parameters.
 */
#include <stdio.h>
#include <orrery/gear.h>
#include <stdlib.h>
#include <string.h>

typedef struct testgear_state {
    char name[128];
    char info[1024]; /* JSON, built in init while the handshake is readable */
} testgear_state;

/* Appends "key":"value" with JSON escaping (value may be NULL: null). */
static void json_field(char *out, size_t cap, const char *key, const char *v) {
    size_t n = strlen(out);
    if (n + strlen(key) + 16 >= cap) return; /* full: the field is left out */
    n += (size_t)snprintf(out + n, cap - n, "%s\"%s\":", n > 1 ? "," : "", key);
    if (!v) {
        snprintf(out + n, cap - n, "null");
        return;
    }
    if (n < cap - 1) out[n++] = '"';
    for (; *v && n + 8 < cap; v++) {
        unsigned char ch = (unsigned char)*v;
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    if (n < cap - 1) out[n++] = '"';
    out[n] = '\0';
}

static void build_info(testgear_state *st, const orr_handshake *hs) {
    char *o = st->info;
    size_t cap = sizeof st->info - 1;
    strcpy(o, "{");
    json_field(o, cap, "method", orr_hs_method(hs));
    json_field(o, cap, "path", orr_hs_path(hs));
    json_field(o, cap, "query", orr_hs_query_string(hs));
    json_field(o, cap, "name", orr_hs_query(hs, "name"));
    json_field(o, cap, "room", orr_hs_param(hs, "room"));
    json_field(o, cap, "rest", orr_hs_param(hs, "rest"));
    json_field(o, cap, "ip", orr_hs_client_ip(hs));
    json_field(o, cap, "cookie", orr_hs_cookie(hs, "session"));
    json_field(o, cap, "header", orr_hs_header(hs, "x-test"));
    json_field(o, cap, "context_id", orr_hs_context_id(hs));
    strcat(o, "}");
}

static int tg_connect(orr_handshake *hs) {
    const char *name = orr_hs_query(hs, "name");
    if (!name || !*name) {
        static const char body[] = "query parameter 'name' is required\n";
        return orr_hs_respond(hs, 400, "text/plain", body, sizeof body - 1);
    }
    if (strlen(name) >= sizeof((testgear_state *)0)->name) {
        static const char body[] = "name too long\n";
        return orr_hs_respond(hs, 400, "text/plain", body, sizeof body - 1);
    }
    return 0;
}

static int tg_init(orr_conn *c, void **state) {
    const orr_handshake *hs = orr_conn_handshake(c);
    testgear_state *st = calloc(1, sizeof *st);
    if (!st) return ORR_ENOMEM;
    const char *name = hs ? orr_hs_query(hs, "name") : NULL;
    if (name) strncpy(st->name, name, sizeof st->name - 1);
    if (hs) build_info(st, hs);
    *state = st;
    return 0;
}

static int starts_with(const uint8_t *d, size_t n, const char *prefix) {
    size_t p = strlen(prefix);
    return n >= p && memcmp(d, prefix, p) == 0;
}

static int tg_close_command(orr_conn *c, const uint8_t *d, size_t n) {
    /* close:<code>:<reason> */
    const uint8_t *p = d + 6, *end = d + n;
    unsigned code = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 6) code = code * 10 + (unsigned)(*p++ - '0'), digits++;
    if (!digits || code > 65535) return orr_conn_send_text(c, "error:bad_close_code", 20);
    const char *reason = "";
    size_t rlen = 0;
    if (p < end && *p == ':') {
        reason = (const char *)p + 1;
        rlen = (size_t)(end - p - 1);
    } else if (p != end) {
        return orr_conn_send_text(c, "error:bad_close_code", 20);
    }
    int rc = orr_conn_close(c, (uint16_t)code, reason, rlen);
    if (rc == ORR_EINVAL) return orr_conn_send_text(c, "error:bad_close_code", 20);
    return rc;
}

static int tg_message(orr_conn *c, void **state, int opcode, const uint8_t *d, size_t n) {
    testgear_state *st = *state;
    if (opcode == ORR_BINARY) return orr_conn_send_binary(c, d, n);
    if (starts_with(d, n, "echo:")) return orr_conn_send_text(c, d + 5, n - 5);
    if (n == 4 && memcmp(d, "noop", 4) == 0) return 0;
    if (n == 5 && memcmp(d, "crash", 5) == 0) return ORR_EFAIL;
    if (n == 4 && memcmp(d, "info", 4) == 0) return orr_conn_send_text(c, st->info, strlen(st->info));
    if (starts_with(d, n, "close:")) return tg_close_command(c, d, n);
    if (starts_with(d, n, "send:") || starts_with(d, n, "join:") || starts_with(d, n, "leave:") ||
        starts_with(d, n, "publish:"))
        return orr_conn_send_text(c, "error:unsupported", 17);
    return orr_conn_send_text(c, "error:unknown_command", 21);
}

static int tg_server_message(orr_conn *c, void **state, const uint8_t *msg, size_t len) {
    (void)state;
    return orr_conn_send_text(c, msg, len);
}

static void tg_terminate(orr_conn *c, void *state, const orr_reason *reason) {
    (void)c;
    (void)reason;
    free(state);
}

static const orr_ws_callbacks testgear_callbacks = {
    .connect = tg_connect,
    .init = tg_init,
    .on_client_message = tg_message,
    .on_server_message = tg_server_message,
    .terminate = tg_terminate,
};

static const orr_ws_route testgear_routes[] = {
    {"/ws", &testgear_callbacks},
    {"/rooms/:room/*rest", &testgear_callbacks},
};

const orr_gear orr_gear_testgear = {
    .api_version = ORR_GEAR_API_VERSION,
    .name = "testgear",
    .ws_routes = testgear_routes,
    .n_ws_routes = sizeof testgear_routes / sizeof testgear_routes[0],
};
