/*
 * chat: named users, rooms and direct messages over the registry.
 *
 * Connect to /chat/ws?name=<name> (1..32 of [A-Za-z0-9_-]). The connection
 * takes <name> as a Unique name in the gear's pool; a name already held is
 * refused with {"type":"error","error":"name_taken"} and close 4009. Then
 * the client speaks JSON text:
 *
 *   {"type":"join","room":R}           -> {"type":"joined","room":R}
 *   {"type":"leave","room":R}          -> {"type":"left","room":R}
 *                                         or error not_in_room
 *   {"type":"say","room":R,"text":T}   -> every member of R gets
 *                                         {"type":"message","room":R,"from":name,"text":T},
 *                                         the sender {"type":"said","room":R,"count":N}
 *   {"type":"dm","to":N,"text":T}      -> N gets {"type":"dm","from":name,"text":T},
 *                                         the sender {"type":"dm_sent","to":N,"delivered":bool},
 *                                         plus "parked":true when N is away
 *                                         and the message waits for it
 *
 * Rooms are 1..64 bytes, texts at most 4000 bytes; one connection may be in
 * at most 9,999 rooms (too_many_rooms). Bad input is answered
 * with {"type":"error","error":<word>} and never closes the connection.
 * Room R is the registry group "room:R". Anyone may say something in a room
 * without being in it (the count tells how many heard it).
 *
 * Direct messages survive a reconnect when the gear's pool parks (the
 * example config sets "park_ms" for gear:chat): a user whose page lost its
 * connection (a deploy's 1001, a network change) and comes back within
 * park_ms gets what was sent to it meanwhile, in order.
 *
 * State per connection is the name only: every registry result carries the
 * name or group it was about, which is all the answer needs, so no list of
 * pending operations is kept.
 */
#include <orrery/gear.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHAT_NAME_MAX 32
#define CHAT_ROOM_MAX 64
#define CHAT_TEXT_MAX 4000

static const char room_prefix[] = "room:";
#define ROOM_PREFIX_LEN (sizeof room_prefix - 1)

typedef struct chat_state {
    char name[CHAT_NAME_MAX + 1];
    /* Set when the registry confirmed the name. Until then client messages
     * are refused: a message sent "from" a name the connection turns out not
     * to hold would impersonate its holder. */
    bool registered;
} chat_state;

static bool valid_name(const char *s, size_t len) {
    if (len < 1 || len > CHAT_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
        if (!ok) return false;
    }
    return true;
}

/* ---- sending JSON --------------------------------------------------- */

/* Serialises `v` (NULL: out of memory) and releases it; the caller frees
 * the string. */
static char *dump(json_t *v) {
    if (!v) return NULL;
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

/* Sends `v` as one text frame and releases it. A connection that is
 * closing takes nothing more, which is no failure of the callback. */
static int send_json(orr_conn *c, json_t *v) {
    char *s = dump(v);
    if (!s) return ORR_ENOMEM;
    int rc = orr_conn_send_text(c, s, strlen(s));
    free(s);
    return rc == ORR_ECLOSED ? 0 : rc;
}

static int send_error(orr_conn *c, const char *error) {
    return send_json(c, json_pack("{s:s,s:s}", "type", "error", "error", error));
}

/* An error about one room or one recipient: `key` names the field. */
static int send_error_about(orr_conn *c, const char *error, const char *key, const char *v,
                            size_t len) {
    return send_json(c, json_pack("{s:s,s:s,s:s#}", "type", "error", "error", error, key, v, len));
}

/* The answer when starting a registry operation failed at once. */
static int send_start_error(orr_conn *c, int rc) {
    if (rc == ORR_ECLOSED) return 0;
    return send_error(c, rc == ORR_EINVAL ? "too_large" : "registry_unavailable");
}

/* ---- the handshake and the name ------------------------------------- */

static int chat_connect(orr_handshake *hs) {
    const char *name = orr_hs_query(hs, "name");
    if (!name || !*name) {
        static const char body[] = "query parameter 'name' is required\n";
        return orr_hs_respond(hs, 400, "text/plain", body, sizeof body - 1);
    }
    if (!valid_name(name, strlen(name))) {
        static const char body[] = "name must be 1 to 32 of A-Z a-z 0-9 _ -\n";
        return orr_hs_respond(hs, 400, "text/plain", body, sizeof body - 1);
    }
    return 0;
}

static int chat_init(orr_conn *c, void **state) {
    const orr_handshake *hs = orr_conn_handshake(c);
    const char *name = hs ? orr_hs_query(hs, "name") : NULL;
    if (!name || !valid_name(name, strlen(name))) return ORR_EINVAL; /* connect checked it */
    chat_state *st = calloc(1, sizeof *st);
    if (!st) return ORR_ENOMEM;
    memcpy(st->name, name, strlen(name) + 1);
    *state = st;
    int rc = orr_unique_register(c, st->name, strlen(st->name), 0);
    if (rc < 0) {
        int e = send_error(c, "registry_unavailable");
        if (e < 0) return e;
        return orr_conn_close(c, 1011, "registry unavailable", 20);
    }
    return 0;
}

static int on_register_result(orr_conn *c, chat_state *st, const orr_registry_result *r) {
    if (r->status == ORR_OK) {
        st->registered = true;
        return send_json(c, json_pack("{s:s,s:s}", "type", "welcome", "name", st->name));
    }
    bool taken = r->status == ORR_ETAKEN;
    int rc = send_error(c, taken ? "name_taken" : "registry_unavailable");
    if (rc < 0) return rc;
    rc = taken ? orr_conn_close(c, 4009, "name taken", 10)
               : orr_conn_close(c, 1013, "registry unavailable", 20);
    return rc == ORR_ECLOSED ? 0 : rc;
}

/* ---- client commands ------------------------------------------------ */

/* A string field of `msg` of min..max bytes; NULL if absent or out of bounds. */
static const char *field(json_t *msg, const char *key, size_t min, size_t max, size_t *len) {
    json_t *v = json_object_get(msg, key);
    if (!json_is_string(v)) return NULL;
    *len = json_string_length(v);
    if (*len < min || *len > max) return NULL;
    return json_string_value(v);
}

/* "room:" + R into buf (at least ROOM_PREFIX_LEN + CHAT_ROOM_MAX bytes). */
static size_t group_of(char *buf, const char *room, size_t len) {
    memcpy(buf, room_prefix, ROOM_PREFIX_LEN);
    memcpy(buf + ROOM_PREFIX_LEN, room, len);
    return ROOM_PREFIX_LEN + len;
}

static int cmd_join_leave(orr_conn *c, json_t *msg, bool join) {
    size_t len;
    const char *room = field(msg, "room", 1, CHAT_ROOM_MAX, &len);
    if (!room) return send_error(c, "bad_room");
    char group[ROOM_PREFIX_LEN + CHAT_ROOM_MAX];
    size_t glen = group_of(group, room, len);
    int rc = join ? orr_group_join(c, group, glen, 0) : orr_group_leave(c, group, glen, 0);
    return rc < 0 ? send_start_error(c, rc) : 0;
}

static int cmd_say(orr_conn *c, chat_state *st, json_t *msg) {
    size_t len, tlen;
    const char *room = field(msg, "room", 1, CHAT_ROOM_MAX, &len);
    if (!room) return send_error(c, "bad_room");
    const char *text = field(msg, "text", 0, SIZE_MAX, &tlen);
    if (!text) return send_error(c, "bad_text");
    if (tlen > CHAT_TEXT_MAX) return send_error_about(c, "text_too_long", "room", room, len);
    char *out = dump(json_pack("{s:s,s:s#,s:s,s:s#}", "type", "message", "room", room, len, "from",
                               st->name, "text", text, tlen));
    if (!out) return ORR_ENOMEM;
    char group[ROOM_PREFIX_LEN + CHAT_ROOM_MAX];
    size_t glen = group_of(group, room, len);
    int rc = orr_group_publish(c, group, glen, out, strlen(out), 0);
    free(out);
    return rc < 0 ? send_start_error(c, rc) : 0;
}

static int cmd_dm(orr_conn *c, chat_state *st, json_t *msg) {
    size_t len, tlen;
    const char *to = field(msg, "to", 1, CHAT_NAME_MAX, &len);
    if (!to || !valid_name(to, len)) return send_error(c, "bad_to");
    const char *text = field(msg, "text", 0, SIZE_MAX, &tlen);
    if (!text) return send_error(c, "bad_text");
    if (tlen > CHAT_TEXT_MAX) return send_error_about(c, "text_too_long", "to", to, len);
    char *out =
        dump(json_pack("{s:s,s:s,s:s#}", "type", "dm", "from", st->name, "text", text, tlen));
    if (!out) return ORR_ENOMEM;
    int rc = orr_unique_send(c, to, len, out, strlen(out), 0);
    free(out);
    return rc < 0 ? send_start_error(c, rc) : 0;
}

static int dispatch(orr_conn *c, chat_state *st, json_t *msg) {
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!type) return send_error(c, "bad_type");
    if (strcmp(type, "join") == 0) return cmd_join_leave(c, msg, true);
    if (strcmp(type, "leave") == 0) return cmd_join_leave(c, msg, false);
    if (strcmp(type, "say") == 0) return cmd_say(c, st, msg);
    if (strcmp(type, "dm") == 0) return cmd_dm(c, st, msg);
    return send_error(c, "unknown_type");
}

static int chat_client_message(orr_conn *c, void **state, int opcode, const uint8_t *data,
                               size_t len) {
    chat_state *st = *state;
    if (opcode != ORR_TEXT) return send_error(c, "expected_text");
    if (!st->registered) return send_error(c, "not_registered");
    json_t *msg = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(msg)) {
        json_decref(msg); /* NULL-safe */
        return send_error(c, "bad_json");
    }
    int rc = dispatch(c, st, msg);
    json_decref(msg);
    return rc;
}

/* ---- registry results and messages from others ---------------------- */

/* The room of a "room:R" group as the result names it; NULL if it is not one. */
static const char *room_of(const orr_registry_result *r, size_t *len) {
    if (r->name_len <= ROOM_PREFIX_LEN || memcmp(r->name, room_prefix, ROOM_PREFIX_LEN) != 0)
        return NULL;
    *len = r->name_len - ROOM_PREFIX_LEN;
    return r->name + ROOM_PREFIX_LEN;
}

static int on_room_result(orr_conn *c, const orr_registry_result *r) {
    size_t len;
    const char *room = room_of(r, &len);
    if (!room) return 0;
    if (r->status == ORR_ENOTFOUND && r->op == ORR_OP_GROUP_LEAVE)
        return send_error_about(c, "not_in_room", "room", room, len);
    /* Publishing to a room nobody is in reached nobody, whichever way a
     * backend says so. */
    bool nobody = r->op == ORR_OP_GROUP_PUBLISH && r->status == ORR_ENOTFOUND;
    if (r->status == ORR_ENOMEM && r->op == ORR_OP_GROUP_JOIN)
        return send_error_about(c, "too_many_rooms", "room", room, len);
    if (r->status != ORR_OK && !nobody)
        return send_error_about(c, "registry_unavailable", "room", room, len);
    switch (r->op) {
    case ORR_OP_GROUP_JOIN:
        return send_json(c, json_pack("{s:s,s:s#}", "type", "joined", "room", room, len));
    case ORR_OP_GROUP_LEAVE:
        return send_json(c, json_pack("{s:s,s:s#}", "type", "left", "room", room, len));
    default: /* ORR_OP_GROUP_PUBLISH */
        return send_json(c, json_pack("{s:s,s:s#,s:I}", "type", "said", "room", room, len, "count",
                                      nobody ? (json_int_t)0 : (json_int_t)r->count));
    }
}

static int on_dm_result(orr_conn *c, const orr_registry_result *r) {
    if (r->status != ORR_OK && r->status != ORR_ENOTFOUND)
        return send_error_about(c, "registry_unavailable", "to", r->name, r->name_len);
    if (r->status == ORR_OK && r->count == ORR_SEND_PARKED)
        return send_json(c, json_pack("{s:s,s:s#,s:b,s:b}", "type", "dm_sent", "to", r->name,
                                      r->name_len, "delivered", 0, "parked", 1));
    return send_json(c, json_pack("{s:s,s:s#,s:b}", "type", "dm_sent", "to", r->name, r->name_len,
                                  "delivered", r->status == ORR_OK));
}

static int chat_registry_result(orr_conn *c, void **state, const orr_registry_result *r) {
    switch (r->op) {
    case ORR_OP_UNIQUE_REGISTER:
        return on_register_result(c, *state, r);
    case ORR_OP_UNIQUE_SEND:
        return on_dm_result(c, r);
    case ORR_OP_GROUP_JOIN:
    case ORR_OP_GROUP_LEAVE:
    case ORR_OP_GROUP_PUBLISH:
        return on_room_result(c, r);
    default:
        return 0;
    }
}

/* Messages from others are the JSON that cmd_say and cmd_dm built: the
 * client gets them as they are. */
static int chat_server_message(orr_conn *c, void **state, const uint8_t *msg, size_t len) {
    (void)state;
    int rc = orr_conn_send_text(c, msg, len);
    if (rc == ORR_EINVAL) { /* not UTF-8: not ours, and no reason to drop the client */
        orr_conn_log(c, ORR_LOG_WARN, "chat: dropped a server message that is not UTF-8");
        return 0;
    }
    return rc == ORR_ECLOSED ? 0 : rc;
}

static void chat_terminate(orr_conn *c, void *state, const orr_reason *reason) {
    (void)c;
    (void)reason;
    free(state); /* the registry drops the name and the rooms by itself */
}

static const orr_ws_callbacks chat_callbacks = {
    .connect = chat_connect,
    .init = chat_init,
    .on_client_message = chat_client_message,
    .on_server_message = chat_server_message,
    .terminate = chat_terminate,
    .on_registry_result = chat_registry_result,
};

static const orr_ws_route chat_routes[] = {{"/ws", &chat_callbacks}};

static const orr_gear gear = {
    .api_version = ORR_GEAR_API_VERSION,
    .name = "chat",
    .ws_routes = chat_routes,
    .n_ws_routes = 1,
};

const orr_gear *orr_gear_entry(void) {
    return &gear;
}
