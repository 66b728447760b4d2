/*
 * The push API: a backend reaches connections without writing a gear.
 *
 *   POST /_orrery/pools/<pool>/unique/<name>/messages  -> 200 {"delivered":true}
 *                                      202 {"delivered":false,"parked":true} (kept for the
 *                                          name's next holder: its pool parks)
 *                                                         404 {"delivered":false}
 *   POST /_orrery/pools/<pool>/groups/<group>/messages -> 200 {"count":N}
 *
 * The body is the message; it reaches the connection's on_server_message
 * like any other. Path segments are percent-decoded (a pool is written
 * gear:chat or gear%3Achat). Off unless api_token is set (404); every
 * request needs "Authorization: Bearer <api_token>" (401, compared in
 * constant time); bodies over max_message_bytes are 413, read no further.
 */
#include "common/log.h"
#include "conn/conn.h"
#include "http/push_path.h"
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool span_eq(orr_span s, const char *lit) {
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* Compares every byte whatever the first difference: the time taken says
 * nothing about how much of a guess was right. */
static bool token_equal(const char *a, size_t an, const char *b, size_t bn) {
    unsigned diff = (unsigned)(an ^ bn);
    for (size_t i = 0; i < an; i++)
        diff |= (unsigned)(uint8_t)a[i] ^ (unsigned)(uint8_t)(i < bn ? b[i] : 0);
    return diff == 0 && bn != 0;
}

/* Whether the request carries the token; if not, *status is the answer
 * (404: the API is off; 401). */
static bool authorised(orr_worker *w, const orr_http_request *req, int *status) {
    orr_server *s = w->srv;
    const orr_span *h = orr_http_header_get(req, "authorization");
    pthread_mutex_lock(&s->token_lock);
    size_t tn = strlen(s->api_token);
    *status = 0;
    if (tn == 0) {
        *status = 404;
    } else if (!h || h->n < 7 || strncasecmp(h->p, "bearer ", 7) != 0) {
        *status = 401;
    } else {
        const char *t = h->p + 7;
        size_t n = h->n - 7;
        while (n && *t == ' ')
            t++, n--;
        if (!token_equal(t, n, s->api_token, tn)) *status = 401;
    }
    pthread_mutex_unlock(&s->token_lock);
    return *status == 0;
}

bool push_body_wanted(orr_worker *w, const orr_http_request *req, int *status) {
    if (!orr_push_path_is(req->path.p, req->path.n))
        *status = 400;
    else if (!authorised(w, req, status))
        return false;
    else if (!span_eq(req->method, "POST"))
        *status = 405;
    else if (req->chunked)
        *status = 411;
    else if (req->content_length > w->srv->cfg.max_message_bytes)
        *status = 413;
    else
        *status = 0;
    return *status == 0;
}

static void answer(orr_worker *w, orr_conn *c, const orr_http_request *req, int status,
                   const char *json, bool keep) {
    orr_log(ORR_LOG_INFO, conn_ctx(&w->cw, c), "%.*s %.*s status=%d", (int)req->method.n,
            req->method.p, (int)(req->path.n > 200 ? 200 : req->path.n), req->path.p, status);
    const char *extra = status == 401   ? "WWW-Authenticate: Bearer realm=\"orrery\"\r\n"
                        : status == 405 ? "Allow: POST\r\n"
                                        : NULL;
    http_respond_simple(&w->cw, c, status, extra, "application/json", json, strlen(json), keep);
}

/* What the node cannot answer alone goes to the registry backend: its
 * answer (0: rq's own outcome; ORR_RQ_PARKED), or ORR_RQ_KEPT when the
 * backend kept it. Then the request waits (reads paused, what followed it
 * kept) for the answer, which push_answer writes. */
static int backend_submit(orr_worker *w, orr_conn *c, const orr_reg_req *rq) {
    orr_backend *be = w->srv->backend;
    int k = be->ops->submit(be, rq);
    if (k != ORR_RQ_KEPT) return k;
    c->flags |= CF_HTTP_WAIT | CF_READ_PAUSED;
    conn_update_events(&w->cw, c);
    return k;
}

static const char parked_json[] = "{\"delivered\":false,\"parked\":true}";

void push_answer(orr_worker *w, orr_conn *c, const orr_registry_result *r) {
    bool keep = r->tag != 0;
    int status = 200;
    char json[48];
    if (r->op == ORR_OP_UNIQUE_SEND && r->status == ORR_OK && r->count == 0) {
        status = 202; /* parked */
        snprintf(json, sizeof json, "%s", parked_json);
    } else if (r->op == ORR_OP_UNIQUE_SEND) {
        status = r->status == ORR_OK ? 200 : 404;
        snprintf(json, sizeof json, "{\"delivered\":%s}", r->status == ORR_OK ? "true" : "false");
    } else {
        snprintf(json, sizeof json, "{\"count\":%llu}", (unsigned long long)r->count);
    }
    orr_log(ORR_LOG_INFO, conn_ctx(&w->cw, c), "push %s %.*s: status=%d",
            r->op == ORR_OP_UNIQUE_SEND ? "unique" : "group",
            (int)(r->name_len > 100 ? 100 : r->name_len), r->name, status);
    c->flags &= (uint16_t) ~(CF_HTTP_WAIT | CF_READ_PAUSED);
    conn_update_events(&w->cw, c);
    size_t rest_n = c->in_len;
    uint8_t *rest = conn_in_take(c);
    out_cork(&w->cw, c);
    http_respond_simple(&w->cw, c, status, NULL, "application/json", json, strlen(json), keep);
    /* Requests that followed it in the same read: now. */
    if (rest_n && c->phase == PHASE_HTTP && !(c->flags & CF_CLOSE_AFTER_FLUSH))
        http_on_data(&w->cw, c, rest, rest_n);
    out_uncork(&w->cw);
    free(rest);
}

static void deliver(orr_worker *w, orr_conn *c, const orr_http_request *req,
                    const orr_push_path *pp, const uint8_t *body, size_t body_len, bool keep);

void push_handle(orr_worker *w, orr_conn *c, const orr_http_request *req, const uint8_t *body,
                 size_t body_len, bool keep) {
    int status;
    if (!authorised(w, req, &status)) {
        answer(w, c, req, status,
               status == 404 ? "{\"error\":\"not found\"}" : "{\"error\":\"unauthorized\"}", keep);
        return;
    }
    if (!span_eq(req->method, "POST")) {
        answer(w, c, req, 405, "{\"error\":\"method not allowed\"}", keep);
        return;
    }
    if (span_eq(req->path, "/_orrery/gears/reload")) {
        /* gears_dir scanned again; new handshakes see the change before
         * this answer goes out. */
        char *json = gears_reload(w->srv);
        answer(w, c, req, 200, json, keep);
        free(json);
        return;
    }
    if (body_len > w->srv->cfg.max_message_bytes) {
        answer(w, c, req, 413, "{\"error\":\"message too large\"}", false);
        return;
    }
    orr_push_path pp;
    if (orr_push_path_parse(req->path.p, req->path.n, &pp) < 0) {
        answer(w, c, req, 404, "{\"error\":\"not found\"}", keep);
        return;
    }
    deliver(w, c, req, &pp, body, body_len, keep);
}

/* A parsed, authorised request: to a name or a group of a pool. */
static void deliver(orr_worker *w, orr_conn *c, const orr_http_request *req,
                    const orr_push_path *pp, const uint8_t *body, size_t body_len, bool keep) {
    const char *pool = pp->pool, *name = pp->name;
    size_t pool_n = pp->pool_len, name_n = pp->name_len;
    /* A pool nobody uses on this node has no names and no members here
     * (another node may have them: the backend knows). */
    orr_pool *p = pools_acquire(w->srv, pool, pool_n, false);
    orr_reg_req rq = {.conn = c->id,
                      .reply_to = c->id,
                      .tag = keep,
                      .pool_idx = p ? p->idx : ORR_RQ_NO_POOL,
                      .pool = pool,
                      .pool_len = pool_n,
                      .name = name,
                      .name_len = name_n,
                      .msg = body,
                      .msg_len = body_len};
    if (pp->unique) {
        uint64_t to;
        if (p && mailbox_local_holder(w, p, name, name_n, &to)) {
            bool ok = mailbox_send(w, p, name, name_n, body, body_len);
            answer(w, c, req, ok ? 200 : 404, ok ? "{\"delivered\":true}" : "{\"delivered\":false}",
                   keep);
        } else {
            rq.kind = ORR_RQ_SEND;
            rq.op = ORR_OP_UNIQUE_SEND;
            rq.status = ORR_ENOTFOUND;
            int k = backend_submit(w, c, &rq);
            if (k == ORR_RQ_PARKED)
                answer(w, c, req, 202, parked_json, keep);
            else if (k != ORR_RQ_KEPT)
                answer(w, c, req, 404, "{\"delivered\":false}", keep);
        }
    } else {
        size_t count = p ? mailbox_publish(w, p, name, name_n, body, body_len) : 0;
        rq.kind = ORR_RQ_PUBLISH;
        rq.op = ORR_OP_GROUP_PUBLISH;
        rq.count = rq.local_count = count;
        if (backend_submit(w, c, &rq) != ORR_RQ_KEPT) {
            char json[48];
            snprintf(json, sizeof json, "{\"count\":%zu}", count);
            answer(w, c, req, 200, json, keep);
        }
    }
    pool_unref(p);
}
