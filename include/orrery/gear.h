/*
 * Orrery gear API: the one header a gear author includes.
 *
 * A gear is a name and a table of websocket routes, each with its callbacks.
 * Every connection behaves like its own process: all callbacks of one
 * connection run one at a time on the worker thread that accepted it, so a
 * gear's per-connection state needs no locks.
 *
 * Ownership and lifetime, stated once for the whole header:
 *  - Pointers that Orrery hands to a callback (handshake, conn, message bytes,
 *    strings returned by accessors) are owned by Orrery and valid only until
 *    that callback returns. Copy what you need to keep.
 *  - Bytes passed to a send function are copied before it returns.
 *  - The state returned by `init` belongs to the gear; Orrery only passes it
 *    back. `terminate` is called exactly once per connection that was
 *    initialised and is the place to free it.
 *
 * Errors: functions return 0 on success and a negative ORR_E* code otherwise.
 *
 * Building and loading: a gear is a shared object that exports
 *
 *     const orr_gear *orr_gear_entry(void);
 *
 * built with `cc -shared -fPIC $(pkg-config --cflags orrery-gear) gear.c -o
 * gear.so` and dropped into the server's gears_dir. The functions declared
 * here are resolved from the server when the gear is loaded; link nothing
 * else of Orrery. A C gear runs inside the server process: a gear that
 * crashes takes every gear with it.
 *
 * Versions: set `.api_version = ORR_GEAR_API_VERSION` and fill the structs
 * below with designated initializers (`.name = ...`, `.init = ...`). Within
 * one major version, fields are only ever added at the end of orr_gear,
 * orr_ws_callbacks and orr_ws_route, each addition raising the minor
 * version, and functions are only added. A server reads only the fields the
 * gear's own version had (later ones count as NULL or 0), so a gear built
 * against an older minor version keeps loading on newer servers. A gear of
 * another major version, or of a newer minor version than the server
 * knows, is refused with a log line that says which.
 */
#ifndef ORRERY_GEAR_H
#define ORRERY_GEAR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ORR_GEAR_API_MAJOR 3
/* 3.1: orr_gear's on_load and on_unload; orr_strerror.
 * 3.2: orr_hs_subprotocol_at, orr_hs_select_subprotocol.
 * 3.3: a send's result may say "parked" (ORR_OK with count 0, see
 *      orr_registry_result; ORR_SEND_PARKED). Nothing changes for older
 *      gears: they see ORR_OK, which it is (the message is kept). */
#define ORR_GEAR_API_MINOR 3
#define ORR_GEAR_API_VERSION ((ORR_GEAR_API_MAJOR << 16) | ORR_GEAR_API_MINOR)

/* Error codes shared by the whole API (0 is success). */
enum {
    ORR_OK = 0,
    ORR_EAGAIN = -1,    /* try again later (would block) */
    ORR_EINVAL = -2,    /* bad argument */
    ORR_ENOMEM = -3,    /* out of memory or over a configured bound */
    ORR_ECLOSED = -4,   /* the connection is closing: nothing more is sent */
    ORR_ENOTFOUND = -5, /* no such name / key */
    ORR_ETAKEN = -6,    /* name already registered */
    ORR_ESTATE = -7,    /* called outside the callback context that allows it */
    ORR_EFAIL = -8,     /* generic callback failure */
    ORR_ENOTSUP = -9,   /* not supported (yet) */
};

/* "ok", "would block", ...: a short text for an ORR_E* code. */
const char *orr_strerror(int err);

/* Opcodes of complete messages handed to a gear. */
enum { ORR_TEXT = 1, ORR_BINARY = 2 };

typedef struct orr_handshake orr_handshake; /* a websocket upgrade request */
typedef struct orr_conn orr_conn;           /* an upgraded connection */

/* ---- the handshake (valid inside `connect`, and inside `init` through
 *      orr_conn_handshake) --------------------------------------------- */

const char *orr_hs_method(const orr_handshake *hs);
/* The request path as received (percent-encoded), without the query. */
const char *orr_hs_path(const orr_handshake *hs);
/* The raw query string (after '?'), "" if none. */
const char *orr_hs_query_string(const orr_handshake *hs);
/* A path parameter (`:name`, or the `*name` wildcard joined with '/'),
 * URL-decoded; NULL if the route has no such parameter. */
const char *orr_hs_param(const orr_handshake *hs, const char *name);
/* The first value of a query parameter, URL-decoded (`+` is a space); NULL if
 * absent. A key given without '=' has the value "". */
const char *orr_hs_query(const orr_handshake *hs, const char *name);
/* The first header of that name (case-insensitive), NULL if absent. */
const char *orr_hs_header(const orr_handshake *hs, const char *name);
/* Headers in the order received; returns 0 or ORR_ENOTFOUND past the end.
 * Names are lower-cased. */
int orr_hs_header_at(const orr_handshake *hs, size_t i, const char **name, const char **value);
/* A cookie from the Cookie header(s), NULL if absent. */
const char *orr_hs_cookie(const orr_handshake *hs, const char *name);
/* The client's IP: the last X-Forwarded-For entry, else the peer address. */
const char *orr_hs_client_ip(const orr_handshake *hs);
/* The context id that every log line of this request carries. */
const char *orr_hs_context_id(const orr_handshake *hs);
/* Gear-chosen data kept for the connection's life and readable later with
 * orr_conn_assigns (the gear owns it; free it in `terminate`, or in
 * `connect` itself when rejecting). */
void orr_hs_set_assigns(orr_handshake *hs, void *assigns);

/* Since 3.2. The subprotocols the client offered (every
 * Sec-WebSocket-Protocol line, as one list, in order): the i-th (from 0), or
 * NULL past the end. A list that is not made of tokens is refused (400)
 * before the upgrade; `connect` then sees none. */
const char *orr_hs_subprotocol_at(const orr_handshake *hs, size_t i);
/* Since 3.2. Inside `connect`: the subprotocol the 101 names. It must be
 * one the client offered (exactly): otherwise ORR_EINVAL, and the
 * handshake fails with 500 and a log line. NULL: none (the default). */
int orr_hs_select_subprotocol(orr_handshake *hs, const char *protocol);

/* Inside `connect`: answer with a plain HTTP response instead of upgrading.
 * `body` may be NULL. May be called once; headers are added before it. */
int orr_hs_respond(orr_handshake *hs, int status, const char *content_type, const void *body,
                   size_t body_len);
int orr_hs_add_header(orr_handshake *hs, const char *name, const char *value);

/* ---- connections ---------------------------------------------------- */

/* A stable id, unique in this process for its life: the registry delivers
 * messages to the connection by it. */
uint64_t orr_conn_id(const orr_conn *c);
const char *orr_conn_context_id(const orr_conn *c);
const char *orr_conn_gear_name(const orr_conn *c);
const char *orr_conn_client_ip(const orr_conn *c);
void *orr_conn_assigns(const orr_conn *c);
/* The handshake, only while `init` runs; NULL afterwards. */
const orr_handshake *orr_conn_handshake(const orr_conn *c);

/* Queue a frame (only inside a callback of this connection). Frames go out in
 * order, in one write, when the callback returns; anything queued after a
 * close is dropped (ORR_ECLOSED). Text must be valid UTF-8 (ORR_EINVAL). */
int orr_conn_send_text(orr_conn *c, const void *data, size_t len);
int orr_conn_send_binary(orr_conn *c, const void *data, size_t len);
/* Close with a code (1000..4999, not a reserved one) and a UTF-8 reason of at
 * most 123 bytes; code 0 sends a close frame with an empty payload. The
 * connection then ends with reason STOP. */
int orr_conn_close(orr_conn *c, uint16_t code, const char *reason, size_t reason_len);

/* The executor pool the connection belongs to: "gear:<name>" or
 * "tenant:<id>". Names and groups of the registry live in this pool. */
const char *orr_conn_pool(const orr_conn *c);

/* ---- the registry: reaching other connections ------------------------
 *
 * A connection can take Unique names and join Groups, in the namespace of
 * its executor pool (`alice` in tenant:t1 and in gear:chat are different
 * names). Anyone can then reach it by name or group: the message lands in
 * its mailbox and reaches its `on_server_message`, on its own worker, in
 * order between one sender and one receiver, at most once.
 *
 * Each call below only starts the operation, never blocks, and returns 0
 * or an error about its arguments or context (ORR_EINVAL: a name or group
 * of 0 or more than ORR_NAME_MAX bytes, or a message over the server's
 * max_message_bytes; ORR_ESTATE: not inside one of this connection's
 * callbacks (init, on_client_message, on_server_message,
 * on_registry_result); ORR_ECLOSED: the connection is closing). The result
 * arrives later through the route's `on_registry_result`, in this
 * connection's context, never nested inside the callback that started it:
 * with the single-node registry right after that callback returns, with a
 * cluster registry when the round trip completes. Results arrive in the
 * order the operations were started. `tag` is passed back unchanged.
 *
 * A connection that ends leaves all its names and groups. In an executor
 * pool with parking on (the server's `park_ms`), its Unique names are
 * *parked* instead: for park_ms, messages sent to them are kept (up to the
 * pool's caps, oldest dropped first) and the send answers ORR_OK with
 * count 0 (parked); the next connection that registers the name (never
 * refused with ETAKEN for a parked name) gets them first through its
 * on_server_message, in order, before any live message.
 */
#define ORR_NAME_MAX 255

typedef enum {
    ORR_OP_UNIQUE_REGISTER = 1,
    ORR_OP_UNIQUE_SEND,
    ORR_OP_GROUP_JOIN,
    ORR_OP_GROUP_LEAVE,
    ORR_OP_GROUP_PUBLISH,
    ORR_OP_UNIQUE_UNREGISTER,
} orr_registry_op;

typedef struct orr_registry_result {
    orr_registry_op op;
    /* ORR_OK, or: ORR_ETAKEN (register: another connection holds the name),
     * ORR_ENOTFOUND (send: nobody holds the name; leave: not a member),
     * ORR_EAGAIN (the registry could not be reached; nothing happened). */
    int status;
    /* publish: the number of members it was sent to; send (status ORR_OK):
     * 1 if delivered to the name's holder, ORR_SEND_PARKED (0) if the name
     * is parked and the message kept for its next holder (since 3.3). */
    uint64_t count;
    const char *name; /* the name or group as given (not NUL-terminated) */
    size_t name_len;
    uint64_t tag;
} orr_registry_result;

/* A send's count when the name is parked (see above). */
#define ORR_SEND_PARKED 0

/* Take `name` for this connection: OK (also when it holds it already) or
 * ETAKEN. A connection may hold several names. */
int orr_unique_register(orr_conn *c, const char *name, size_t name_len, uint64_t tag);
/* Give up a name this connection holds: OK, or ENOTFOUND when it does not
 * hold it. */
int orr_unique_unregister(orr_conn *c, const char *name, size_t name_len, uint64_t tag);
/* Send bytes to the connection holding `name`: OK (count 1: delivered;
 * count ORR_SEND_PARKED: parked, kept for its next holder) or ENOTFOUND. */
int orr_unique_send(orr_conn *c, const char *name, size_t name_len, const void *msg, size_t len,
                    uint64_t tag);
/* Join a group (OK, also when already a member) or leave it (OK or
 * ENOTFOUND when not a member). */
int orr_group_join(orr_conn *c, const char *group, size_t group_len, uint64_t tag);
int orr_group_leave(orr_conn *c, const char *group, size_t group_len, uint64_t tag);
/* Send bytes to every member (this connection too, if it is one); count is
 * how many members it was sent to. */
int orr_group_publish(orr_conn *c, const char *group, size_t group_len, const void *msg, size_t len,
                      uint64_t tag);

/* ---- logs ----------------------------------------------------------- */

enum { ORR_LOG_DEBUG, ORR_LOG_INFO, ORR_LOG_WARN, ORR_LOG_ERROR };
/* One line on stderr, with the connection's context id. */
void orr_conn_log(const orr_conn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- callbacks ------------------------------------------------------ */

typedef enum {
    ORR_REASON_REMOTE,      /* the client sent a close (code and text below) */
    ORR_REASON_TIMEOUT,     /* idle timeout (close 1000 was sent) */
    ORR_REASON_STOP,        /* the gear closed, or the server drained (1001) */
    ORR_REASON_CLOSED,      /* TCP closed without a close frame */
    ORR_REASON_BADFRAME,    /* protocol error (1002 sent) */
    ORR_REASON_BADENCODING, /* invalid UTF-8 (1007 sent) */
    ORR_REASON_BADSIZE,     /* message over the size limit (1009 sent) */
    ORR_REASON_ERROR,       /* a callback failed, or a socket error */
    ORR_REASON_SLOW,        /* its client did not read: over max_outbound_bytes (1008 sent) */
    ORR_REASON_OVERLOAD,    /* the server was at its memory budget, max_buffered_bytes: a
                               message refused (1013 sent) or output shed (1008 sent) */
} orr_reason_kind;

typedef struct orr_reason {
    orr_reason_kind kind;
    uint16_t code;    /* REMOTE: the client's close code, 0 if it sent none */
    const char *text; /* REMOTE: its reason (not NUL-terminated); others: a word */
    size_t text_len;
} orr_reason;

const char *orr_reason_name(orr_reason_kind kind);

/*
 * Callbacks return 0 on success; a negative value means the callback failed.
 * A failed callback costs its connection, and only it: an error line in the
 * log, a close frame with an empty payload, and `terminate` with ERROR and
 * the state as it was before that callback (a callback that stored a new
 * state in *state before failing must free it itself).
 */
typedef struct orr_ws_callbacks {
    /* Before the upgrade. Return 0 to accept, unless orr_hs_respond was
     * called, which answers with that response instead. A failure is 500.
     * May be NULL (accept). */
    int (*connect)(orr_handshake *hs);
    /* Right after the upgrade: set *state (NULL is fine) and queue frames. */
    int (*init)(orr_conn *c, void **state);
    /* Each complete text or binary message (fragments reassembled). */
    int (*on_client_message)(orr_conn *c, void **state, int opcode, const uint8_t *data,
                             size_t len);
    /* Each message that someone addressed to this connection. May be NULL. */
    int (*on_server_message)(orr_conn *c, void **state, const uint8_t *msg, size_t len);
    /* Exactly once, at the end. Frames queued here are dropped. */
    void (*terminate)(orr_conn *c, void *state, const orr_reason *reason);
    /* The result of a registry operation this connection started. May be
     * NULL (results are then dropped). */
    int (*on_registry_result)(orr_conn *c, void **state, const orr_registry_result *r);
} orr_ws_callbacks;

typedef struct orr_ws_route {
    /* e.g. "/ws" or "/room/:id": literals, `:param`, and a trailing wildcard
     * segment (an asterisk then a name) matching at least one segment; matched on URL-decoded
     * segments, with or without a trailing '/' when there is no wildcard. */
    const char *pattern;
    const orr_ws_callbacks *callbacks;
} orr_ws_route;

typedef struct orr_gear {
    int api_version;  /* ORR_GEAR_API_VERSION: the version it was built against */
    const char *name; /* [a-z][a-z0-9_]*, also its path prefix and subdomain */
    const orr_ws_route *ws_routes;
    size_t n_ws_routes;
    /* Optional: the executor pool of a websocket handshake. Write
     * "gear:<name>" or "tenant:<id>" (id: 1 to 64 of [A-Za-z0-9_.-]) into
     * pool (cap bytes) and return 0; a failure is 500. A gear may use its
     * own gear pool and any tenant pool; any other answer is 404. NULL: the
     * gear's own pool. Runs before `connect`. */
    int (*executor_pool_for_web_request)(const orr_handshake *hs, char *pool, size_t cap);
    /* Optional: the response when the pool is at its ws_max_connections:
     * call orr_hs_respond (else, or when NULL, 503 with the body
     * TooManyWebsocketConnections). */
    int (*ws_too_many_connections)(orr_handshake *hs);
    /* Since 3.1. Optional: called once when this version of the gear is
     * loaded, before it serves anyone, with its config: the JSON text of
     * the server config's gear_config.<name> ("{}" when absent, `len`
     * bytes, NUL-terminated). Non-zero refuses the load (the version in
     * service, if any, stays). */
    int (*on_load)(const char *config_json, size_t len);
    /* Since 3.1. Optional: called once when this version is unloaded, after
     * its last connection ended (an upgrade) or when the server stops. */
    void (*on_unload)(void);
} orr_gear;

/* What a gear's shared object exports: its gear, which must stay valid
 * (static storage) while the object is loaded. Exported even when the gear
 * is built with -fvisibility=hidden. */
__attribute__((visibility("default"))) const orr_gear *orr_gear_entry(void);

#ifdef __cplusplus
}
#endif
#endif
