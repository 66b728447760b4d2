/*
 * The server's answer to one HTTP request (the connection module reads and
 * writes HTTP; what a request means is decided here): the server's own
 * paths (/healthz, /metrics, /, the push API), then for a websocket route:
 * route (404, 400), executor pool and its limit (503), the gear's connect,
 * the protocol checks (426, 400), and the upgrade.
 */
#include "common/log.h"
#include "conn/conn.h"
#include "gearapi/gearapi.h"
#include "http/deflate_offer.h"
#include "http/pool_name.h"
#include "http/push_path.h"
#include "http/websocket.h"
#include "server/internal.h"

#include <stdlib.h>
#include <string.h>

/* A response to a websocket route's request: counted by status. */
static void hs_respond(orr_worker *w, orr_conn *c, const orr_http_request *req, int status,
                       const char *extra, const char *body, bool keep_alive) {
    metrics_count_handshake(w->srv, status);
    http_respond_text(&w->cw, c, req, status, extra, body, keep_alive);
}

/* The route's target (the router's data: gear and callbacks, no pool). */
static const orr_route_target *target_of(const orr_handshake *hs) {
    return hs->match.data;
}

/* *pool: the handshake's reference and slot, unless the connection took them. */
static void hs_end(orr_handshake *hs, orr_pool **pool) {
    if (*pool) {
        pool_release(*pool);
        pool_unref(*pool);
    }
    *pool = NULL;
    hs_release(hs);
}

/* The executor pool of this handshake, with a reference for it: the
 * gear's own unless its executor_pool_for_web_request picks another.
 * True with *out set, or false with *status the answer (404: a pool the
 * gear may not use; 500: the callback failed; 503: no room for another
 * pool). */
static bool pick_pool(orr_worker *w, orr_handshake *hs, orr_pool **out, int *status) {
    const orr_gear *g = target_of(hs)->version->gear;
    orr_pool *own = target_of(hs)->version->name->pool;
    *out = NULL;
    if (!g->executor_pool_for_web_request) {
        pool_ref(own); /* counts nothing for a gear's pool, but keeps the rule simple */
        *out = own;
        return true;
    }
    char name[POOL_NAME_MAX + 16] = "";
    int rc = g->executor_pool_for_web_request(hs, name, sizeof name);
    if (rc < 0) {
        orr_log(ORR_LOG_ERROR, hs->ctx, "gear %s: executor_pool_for_web_request failed: %s",
                g->name, orr_strerror(rc));
        *status = 500;
        return false;
    }
    size_t len = strnlen(name, sizeof name);
    if (len == sizeof name || orr_pool_name_check(name, len) < 0) {
        orr_log(ORR_LOG_INFO, hs->ctx,
                "gear %s: executor pool '%.*s' is not a pool name: status=404", g->name,
                (int)(len > 100 ? 100 : len), name);
        *status = 404;
        return false;
    }
    if (strncmp(name, "gear:", 5) == 0) {
        if (strcmp(name + 5, g->name) != 0) {
            orr_log(ORR_LOG_INFO, hs->ctx, "gear %s may not use executor pool %s: status=404",
                    g->name, name);
            *status = 404;
            return false;
        }
        pool_ref(own);
        *out = own;
        return true;
    }
    *out = pools_acquire(w->srv, name, len, true);
    *status = 503;
    return *out != NULL;
}

static bool span_is(orr_span s, const char *lit) {
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* The server's own paths (and the drain): true when answered. */
static bool serve_own(orr_worker *w, orr_conn *c, const orr_http_request *req, const uint8_t *body,
                      size_t body_len) {
    orr_server *srv = w->srv;
    bool keep = req->keep_alive;
    bool read = span_is(req->method, "GET") || span_is(req->method, "HEAD");
    if (w->draining) {
        http_respond_text(&w->cw, c, req, 503, NULL, "server shutting down\n", false);
    } else if (orr_push_path_is(req->path.p, req->path.n)) {
        push_handle(w, c, req, body, body_len, keep);
    } else if (read && span_is(req->path, "/metrics")) {
        size_t n;
        char *text = metrics_render(srv, &n);
        http_log_request(&w->cw, c, req, 200);
        http_respond_simple(&w->cw, c, 200, NULL, "text/plain; version=0.0.4; charset=utf-8", text,
                            n, keep);
        free(text);
    } else if (read && span_is(req->path, "/healthz")) {
        char why[200];
        bool ready = srv->backend->ops->ready(srv->backend, why, sizeof why - 1);
        if (!ready) strcat(why, "\n");
        http_respond_text(&w->cw, c, req, ready ? 200 : 503, NULL, ready ? "ok\n" : why, keep);
    } else if (read && (span_is(req->path, "/") || span_is(req->path, "/index.html"))) {
        size_t n;
        char *page = index_page_render(srv, &n); /* the gears in service now */
        http_log_request(&w->cw, c, req, 200);
        http_respond_simple(&w->cw, c, 200, NULL, "text/html; charset=utf-8", page, n, keep);
        free(page);
    } else {
        return false;
    }
    return true;
}

/* The route (404) and a well-formed path and query (400): false when
 * answered; true with a reference on the route's version (gears_route). */
static bool route(orr_worker *w, orr_conn *c, const orr_http_request *req, orr_handshake *hs) {
    bool keep = req->keep_alive;
    const orr_span *host = orr_http_header_get(req, "host");
    char *scratch = hs_alloc(hs, req->path.n + 64);
    int rc = gears_route(w->srv, host ? host->p : NULL, host ? host->n : 0, req->path.p,
                         req->path.n, scratch, req->path.n + 64, &hs->match);
    bool get = span_is(req->method, "GET"), query_ok = rc == 0 && hs_query_valid(hs);
    if (rc == 0 && (!get || !query_ok)) gears_version_unref(target_of(hs)->version);
    if (rc == ORR_ENOTFOUND || (rc == 0 && !get)) {
        http_respond_text(&w->cw, c, req, 404, NULL, "not found\n", keep);
        return false;
    }
    if (!query_ok) {
        hs_respond(w, c, req, 400, NULL, "malformed path or query\n", keep);
        return false;
    }
    http_client_ip(&w->cw, c, req, hs->client_ip, sizeof hs->client_ip);
    return true;
}

/* The gear's own answer (connect, ws_too_many_connections), if it set one. */
static bool gear_answered(orr_worker *w, orr_conn *c, const orr_http_request *req,
                          const orr_handshake *hs) {
    if (!hs->resp_status) return false;
    metrics_count_handshake(w->srv, hs->resp_status);
    http_log_request(&w->cw, c, req, hs->resp_status);
    http_respond_simple(&w->cw, c, hs->resp_status, hs->resp_headers_len ? hs->resp_headers : NULL,
                        hs->resp_ctype, hs->resp_body, hs->resp_body_len, req->keep_alive);
    return true;
}

/* The pool and its connection limit come before everything else the gear
 * does, and before the protocol checks: at the limit, even a plain GET is
 * 503. True with *out set (a reference and a slot), or answered. */
static bool admit(orr_worker *w, orr_conn *c, const orr_http_request *req, orr_handshake *hs,
                  orr_pool **out) {
    bool keep = req->keep_alive;
    orr_pool *pool;
    int status;
    if (!pick_pool(w, hs, &pool, &status)) {
        hs_respond(w, c, req, status, NULL,
                   status == 404   ? "not found\n"
                   : status == 503 ? "too many executor pools\n"
                                   : "internal server error\n",
                   keep);
        return false;
    }
    if (!origin_check(w->srv, req, pool->name, hs->ctx)) {
        hs_respond(w, c, req, 403, NULL, "origin not allowed\n", keep);
        pool_unref(pool);
        return false;
    }
    if (pool_take(pool)) {
        *out = pool;
        return true;
    }
    orr_log(ORR_LOG_ERROR, hs->ctx, "executor pool %s: ws_max_connections (%u) reached: rejected",
            pool->name, atomic_load_explicit(&pool->max, memory_order_relaxed));
    const orr_gear *g = target_of(hs)->version->gear;
    if (g->ws_too_many_connections) {
        int rc = g->ws_too_many_connections(hs);
        if (rc < 0)
            orr_log(ORR_LOG_ERROR, hs->ctx, "gear %s: ws_too_many_connections failed: %s", g->name,
                    orr_strerror(rc));
    }
    if (!gear_answered(w, c, req, hs))
        hs_respond(w, c, req, 503, NULL, "TooManyWebsocketConnections", keep);
    pool_unref(pool);
    return false;
}

/* The gear's connect: true to go on, false when answered (its own answer, or 500). */
static bool run_connect(orr_worker *w, orr_conn *c, const orr_http_request *req,
                        orr_handshake *hs) {
    const orr_ws_callbacks *cb = target_of(hs)->r.callbacks;
    if (!cb->connect) return true;
    int rc = cb->connect(hs);
    if (gear_answered(w, c, req, hs)) return false;
    if (rc >= 0 && hs->refused_subprotocol) {
        orr_log(ORR_LOG_ERROR, hs->ctx,
                "gear %s: connect chose the subprotocol '%s', which the client did not offer",
                target_of(hs)->r.gear, hs->refused_subprotocol);
        hs_respond(w, c, req, 500, NULL, "internal server error\n", req->keep_alive);
        return false;
    }
    if (rc >= 0) return true;
    orr_log(ORR_LOG_ERROR, hs->ctx, "gear %s: connect failed: %s", target_of(hs)->r.gear,
            orr_strerror(rc));
    hs_respond(w, c, req, 500, NULL, "internal server error\n", req->keep_alive);
    return false;
}

/* The protocol checks (426, 400), then the 101 and the websocket phase. */
static bool upgrade(orr_worker *w, orr_conn *c, const orr_http_request *req, orr_handshake *hs,
                    orr_pool **pool) {
    orr_span key;
    int rc = orr_ws_upgrade_check(req, &key);
    if (rc == ORR_HTTP_ENOUPGRADE) {
        hs_respond(w, c, req, 426, "Upgrade: websocket\r\n", "this is a websocket endpoint\n",
                   req->keep_alive);
        return false;
    }
    if (rc < 0) {
        hs_respond(w, c, req, 400, "Sec-WebSocket-Version: 13\r\n", "bad websocket handshake\n",
                   req->keep_alive);
        return false;
    }
    orr_ws_protocol_iter it = {.req = req};
    orr_span tok;
    while ((rc = orr_ws_protocol_next(&it, &tok)) == 1)
        ;
    if (rc < 0) {
        orr_log(ORR_LOG_INFO, hs->ctx, "Sec-WebSocket-Protocol is not a list of tokens: 400");
        hs_respond(w, c, req, 400, NULL, "bad Sec-WebSocket-Protocol\n", req->keep_alive);
        return false;
    }
    char ext[ORR_WS_DEFLATE_RESPONSE_MAX];
    orr_ws_deflate_params dp;
    bool z = atomic_load_explicit(&(*pool)->deflate, memory_order_relaxed) &&
             orr_ws_deflate_negotiate(req, &dp, ext) == 1;
    c->deflate_bits = z ? dp.server_max_window_bits : 0;
    http_switch_protocols(&w->cw, c, key, hs->subprotocol, z ? ext : NULL);
    metrics_count_handshake(w->srv, 101);
    http_log_request(&w->cw, c, req, 101);
    /* The slot and the reference pass to the connection: its route now
     * names its pool, until the connection struct is freed. */
    c->route = &gears_bind(target_of(hs), *pool)->r;
    *pool = NULL;
    ws_start(&w->cw, c, hs, hs->assigns);
    return true;
}

/* Returns true when the connection switched to the websocket phase. A body
 * (only the push API takes one) was read whole beforehand. Order: the
 * server's own paths, route (404, 400), pool, Origin (403) and limit
 * (503), connect, protocol (426, 400), 101. */
bool request_handle(orr_worker *w, orr_conn *c, const orr_http_request *req, const uint8_t *body,
                    size_t body_len) {
    c->ctx_seq = ++w->cw.ctx_seq;
    c->ctx_ms = orr_wall_ms();
    w->cw.resp_no_body = span_is(req->method, "HEAD");
    if (serve_own(w, c, req, body, body_len)) return false;
    orr_handshake hs;
    orr_pool *pool = NULL;
    hs_init(&hs, c, req, conn_ctx(&w->cw, c));
    if (!route(w, c, req, &hs)) {
        hs_release(&hs);
        return false;
    }
    /* A reference on the version: the connection's once upgraded. */
    gear_version *v = target_of(&hs)->version;
    bool upgraded = admit(w, c, req, &hs, &pool) && run_connect(w, c, req, &hs) &&
                    upgrade(w, c, req, &hs, &pool);
    hs_end(&hs, &pool); /* the pool and its slot are the connection's once upgraded */
    if (!upgraded) gears_version_unref(v);
    return upgraded;
}
