/*
 * testgear: the gear our tests (and others') drive. Its handshake needs a
 * query parameter `name`; its text commands are:
 *   echo:<t>                 -> <t>
 *   noop                     -> nothing
 *   close:<code>:<reason>    -> the gear closes with that code and reason
 *   crash                    -> the callback fails (client sees an empty close)
 *   info                     -> JSON of what its handshake saw (the gear API's accessors)
 *   send:<to>:<text>         -> sends "<name>:<text>" to the Unique name <to>;
 *                               sent:true|sent:parked|sent:false
 *   join:<g>                 -> joined:<g>
 *   leave:<g>                -> left:<g> | not_in_group:<g>
 *   publish:<g>:<text>       -> sends <text> to every member of <g>; published:<count>
 *   unregister:<n>           -> gives up the Unique name <n>: unregistered:<n> | not_registered:<n>
 *   register:<n>             -> takes the Unique name <n> too: registered:<n> | taken:<n>
 *   pool                     -> its executor pool
 * Anything else answers error:unknown_command. Binary messages are echoed;
 * server messages are forwarded to the client as text (binary when they are
 * not UTF-8).
 *
 * `init` registers the query's `name` as a Unique name; when another
 * connection holds it, the gear closes with 4009 "name taken". The pool is
 * tenant:<id> when the query has tenant=<id>, else gear:testgear; over the
 * pool's limit the answer is 503 {"error":"ws_too_many_connections"}.
 * With proto=<p> `connect` chooses the subprotocol <p> when the client
 * offered it; proto_force=<p> chooses <p> whether offered or not (not
 * offered: the server answers 500).
 * With refuse=1 `connect` answers 503 {"error":"refused"} instead of
 * upgrading; with retry_after=<v> either 503 carries its own "retry-after: <v>"
 * (written in lower case: the server must recognise it in any case).
 * Routes: /ws, and /rooms/:room/ followed by a wildcard `rest`, to exercise
 * path parameters.
 */
#include <orrery/gear.h>
#include <stdio.h>
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

/* A 503 of the gear's own, with the query's retry_after if it has one. */
static int tg_503(orr_handshake *hs, const char *body, size_t len) {
    const char *retry = orr_hs_query(hs, "retry_after");
    if (retry) {
        int rc = orr_hs_add_header(hs, "retry-after", retry);
        if (rc < 0) return rc;
    }
    return orr_hs_respond(hs, 503, "application/json", body, len);
}

/* proto=<p>: <p> if the client offered it; proto_force=<p>: <p> anyway. */
static void tg_subprotocol(orr_handshake *hs) {
    const char *want = orr_hs_query(hs, "proto"), *p;
    for (size_t i = 0; want && (p = orr_hs_subprotocol_at(hs, i)) != NULL; i++)
        if (strcmp(p, want) == 0) orr_hs_select_subprotocol(hs, want);
    const char *force = orr_hs_query(hs, "proto_force");
    if (force) orr_hs_select_subprotocol(hs, force);
}

static int tg_connect(orr_handshake *hs) {
    tg_subprotocol(hs);
    if (orr_hs_query(hs, "refuse")) {
        static const char body[] = "{\"error\":\"refused\"}";
        return tg_503(hs, body, sizeof body - 1);
    }
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
    return orr_unique_register(c, st->name, strlen(st->name), 0);
}

static int tg_pool(const orr_handshake *hs, char *pool, size_t cap) {
    const char *tenant = orr_hs_query(hs, "tenant");
    if (tenant)
        snprintf(pool, cap, "tenant:%s", tenant);
    else
        snprintf(pool, cap, "gear:testgear");
    return 0;
}

static int tg_too_many(orr_handshake *hs) {
    static const char body[] = "{\"error\":\"ws_too_many_connections\"}";
    return tg_503(hs, body, sizeof body - 1);
}

/* "<prefix><a>" as a reply. */
static int reply2(orr_conn *c, const char *prefix, const char *a, size_t alen) {
    char buf[ORR_NAME_MAX + 32];
    int n = snprintf(buf, sizeof buf, "%s%.*s", prefix, (int)alen, a);
    return orr_conn_send_text(c, buf, (size_t)n);
}

static int tg_result(orr_conn *c, void **state, const orr_registry_result *r) {
    (void)state;
    switch (r->op) {
    case ORR_OP_UNIQUE_REGISTER:
        if (r->tag == 1) /* the register: command */
            return reply2(c, r->status == ORR_OK ? "registered:" : "taken:", r->name, r->name_len);
        if (r->status == ORR_ETAKEN) return orr_conn_close(c, 4009, "name taken", 10);
        return r->status == ORR_OK ? 0 : r->status;
    case ORR_OP_UNIQUE_SEND:
        if (r->status != ORR_OK) return orr_conn_send_text(c, "sent:false", 10);
        return r->count == ORR_SEND_PARKED ? orr_conn_send_text(c, "sent:parked", 11)
                                           : orr_conn_send_text(c, "sent:true", 9);
    case ORR_OP_GROUP_JOIN:
        return reply2(c, r->status == ORR_OK ? "joined:" : "error:join_failed:", r->name,
                      r->name_len);
    case ORR_OP_GROUP_LEAVE:
        return reply2(c, r->status == ORR_OK ? "left:" : "not_in_group:", r->name, r->name_len);
    case ORR_OP_UNIQUE_UNREGISTER:
        return reply2(c, r->status == ORR_OK ? "unregistered:" : "not_registered:", r->name,
                      r->name_len);
    case ORR_OP_GROUP_PUBLISH: {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "published:%llu", (unsigned long long)r->count);
        return orr_conn_send_text(c, buf, (size_t)n);
    }
    default:
        return 0;
    }
}

/* The text up to the first ':' after `from`: its length, or -1 without one. */
static long field_len(const uint8_t *from, const uint8_t *end) {
    const uint8_t *colon = memchr(from, ':', (size_t)(end - from));
    return colon ? (long)(colon - from) : -1;
}

static int bad_name(orr_conn *c) {
    return orr_conn_send_text(c, "error:bad_name", 14);
}

static int tg_send(orr_conn *c, testgear_state *st, const uint8_t *d, size_t n) {
    /* send:<to>:<text> */
    const uint8_t *p = d + 5, *end = d + n;
    long to_len = field_len(p, end);
    if (to_len <= 0 || to_len > ORR_NAME_MAX) return bad_name(c);
    const uint8_t *text = p + to_len + 1;
    size_t text_len = (size_t)(end - text), name_len = strlen(st->name);
    char *msg = malloc(name_len + 1 + text_len + 1);
    if (!msg) return ORR_ENOMEM;
    memcpy(msg, st->name, name_len);
    msg[name_len] = ':';
    memcpy(msg + name_len + 1, text, text_len);
    int rc = orr_unique_send(c, (const char *)p, (size_t)to_len, msg, name_len + 1 + text_len, 0);
    free(msg);
    return rc;
}

static int tg_publish(orr_conn *c, const uint8_t *d, size_t n) {
    /* publish:<g>:<text> */
    const uint8_t *p = d + 8, *end = d + n;
    long g_len = field_len(p, end);
    if (g_len <= 0 || g_len > ORR_NAME_MAX) return bad_name(c);
    const uint8_t *text = p + g_len + 1;
    return orr_group_publish(c, (const char *)p, (size_t)g_len, text, (size_t)(end - text), 0);
}

static int tg_group(orr_conn *c, const uint8_t *g, size_t len, int join) {
    if (len == 0 || len > ORR_NAME_MAX) return bad_name(c);
    return join ? orr_group_join(c, (const char *)g, len, 0)
                : orr_group_leave(c, (const char *)g, len, 0);
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
    while (p < end && *p >= '0' && *p <= '9' && digits < 6)
        code = code * 10 + (unsigned)(*p++ - '0'), digits++;
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
    if (n == 4 && memcmp(d, "info", 4) == 0)
        return orr_conn_send_text(c, st->info, strlen(st->info));
    if (starts_with(d, n, "close:")) return tg_close_command(c, d, n);
    if (starts_with(d, n, "send:")) return tg_send(c, st, d, n);
    if (starts_with(d, n, "join:")) return tg_group(c, d + 5, n - 5, 1);
    if (starts_with(d, n, "leave:")) return tg_group(c, d + 6, n - 6, 0);
    if (starts_with(d, n, "publish:")) return tg_publish(c, d, n);
    if (starts_with(d, n, "register:")) {
        if (n == 9 || n - 9 > ORR_NAME_MAX) return bad_name(c);
        return orr_unique_register(c, (const char *)d + 9, n - 9, 1);
    }
    if (starts_with(d, n, "unregister:")) {
        if (n == 11 || n - 11 > ORR_NAME_MAX) return bad_name(c);
        return orr_unique_unregister(c, (const char *)d + 11, n - 11, 0);
    }
    if (n == 4 && memcmp(d, "pool", 4) == 0)
        return orr_conn_send_text(c, orr_conn_pool(c), strlen(orr_conn_pool(c)));
    return orr_conn_send_text(c, "error:unknown_command", 21);
}

static int tg_server_message(orr_conn *c, void **state, const uint8_t *msg, size_t len) {
    (void)state;
    int rc = orr_conn_send_text(c, msg, len);
    return rc == ORR_EINVAL ? orr_conn_send_binary(c, msg, len) : rc;
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
    .on_registry_result = tg_result,
};

static const orr_ws_route testgear_routes[] = {
    {"/ws", &testgear_callbacks},
    {"/rooms/:room/*rest", &testgear_callbacks},
};

static const orr_gear gear = {
    .api_version = ORR_GEAR_API_VERSION,
    .name = "testgear",
    .ws_routes = testgear_routes,
    .n_ws_routes = sizeof testgear_routes / sizeof testgear_routes[0],
    .executor_pool_for_web_request = tg_pool,
    .ws_too_many_connections = tg_too_many,
};

const orr_gear *orr_gear_entry(void) {
    return &gear;
}
