/*
 * The push API: a backend reaches connections without writing a gear.
 *
 *   POST /_orrery/pools/<pool>/unique/<name>/messages  -> 200 {"delivered":true}
 *                                                         404 {"delivered":false}
 *   POST /_orrery/pools/<pool>/groups/<group>/messages -> 200 {"count":N}
 *
 * The body is the message; it reaches the connection's on_server_message
 * like any other. Path segments are percent-decoded (a pool is written
 * gear:chat or gear%3Achat). Off unless api_token is set (404); every
 * request needs "Authorization: Bearer <api_token>" (401, compared in
 * constant time); bodies over max_message_bytes are 413, read no further.
 */
#include "cluster/cluster.h"
#include "common/log.h"
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PREFIX "/_orrery/"

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

/* 0 if authorised, else the status (404: the API is off; 401). */
static int authorise(orr_worker *w, const orr_http_request *req) {
    orr_server *s = w->srv;
    const orr_span *h = orr_http_header_get(req, "authorization");
    pthread_mutex_lock(&s->token_lock);
    size_t tn = strlen(s->api_token);
    int status = 0;
    if (tn == 0) {
        status = 404;
    } else if (!h || h->n < 7 || strncasecmp(h->p, "bearer ", 7) != 0) {
        status = 401;
    } else {
        const char *t = h->p + 7;
        size_t n = h->n - 7;
        while (n && *t == ' ')
            t++, n--;
        if (!token_equal(t, n, s->api_token, tn)) status = 401;
    }
    pthread_mutex_unlock(&s->token_lock);
    return status;
}

static bool is_push_path(const orr_http_request *req) {
    return req->path.n >= sizeof PREFIX - 1 && memcmp(req->path.p, PREFIX, sizeof PREFIX - 1) == 0;
}

int push_body_allowed(orr_worker *w, const orr_http_request *req) {
    if (!is_push_path(req)) return 400;
    int status = authorise(w, req);
    if (status) return status;
    if (!span_eq(req->method, "POST")) return 405;
    if (req->chunked) return 411;
    if (req->content_length > w->srv->cfg.max_message_bytes) return 413;
    return 0;
}

static void answer(orr_worker *w, orr_conn *c, const orr_http_request *req, int status,
                   const char *json, bool keep) {
    orr_log(ORR_LOG_INFO, conn_ctx(w, c), "%.*s %.*s status=%d", (int)req->method.n, req->method.p,
            (int)(req->path.n > 200 ? 200 : req->path.n), req->path.p, status);
    const char *extra = status == 401   ? "WWW-Authenticate: Bearer realm=\"orrery\"\r\n"
                        : status == 405 ? "Allow: POST\r\n"
                                        : NULL;
    http_respond_simple(w, c, status, extra, "application/json", json, strlen(json), keep);
}

/* Splits "pools/<pool>/<kind>/<name>/messages" into decoded parts, in
 * place in buf. Returns false if it has another shape. */
static bool split_path(char *buf, size_t n, char **pool, size_t *pool_n, char **kind, char **name,
                       size_t *name_n) {
    char *seg[5];
    size_t len[5], k = 0;
    char *p = buf, *end = buf + n;
    while (p <= end && k < 5) {
        char *slash = memchr(p, '/', (size_t)(end - p));
        char *e = slash ? slash : end;
        seg[k] = p;
        long d = orr_url_decode(p, (size_t)(e - p), p, false);
        if (d <= 0) return false;
        len[k++] = (size_t)d;
        if (!slash) {
            p = end + 1;
            break;
        }
        p = slash + 1;
    }
    if (k != 5 || p != end + 1) return false;
    if (len[0] != 5 || memcmp(seg[0], "pools", 5) != 0) return false;
    if (len[4] != 8 || memcmp(seg[4], "messages", 8) != 0) return false;
    seg[2][len[2]] = '\0';
    *pool = seg[1];
    *pool_n = len[1];
    *kind = seg[2];
    *name = seg[3];
    *name_n = len[3];
    return true;
}

/* With a cluster, a name held elsewhere or a group's members everywhere
 * need Redis: the request waits (reads paused, what followed it kept) for
 * the answer, which push_answer writes. The cluster request takes over the
 * caller's reference to p. */
static void wait_for_cluster(orr_worker *w, orr_conn *c, orr_pool *p, bool unique, const char *name,
                             size_t name_n, const uint8_t *body, size_t body_len, bool keep) {
    orr_cl_req *rq = orr_xcalloc(1, sizeof *rq);
    rq->kind = unique ? CL_SEND : CL_PUBLISH;
    rq->conn = c->id;
    rq->reply_to = c->id;
    rq->tag = keep;
    rq->pool = p;
    rq->name_len = (uint16_t)name_n;
    memcpy(rq->name, name, name_n);
    /* A group's members here get it now; the cluster tells the others. */
    if (!unique) rq->local_count = mailbox_publish(w, p, name, name_n, body, body_len);
    rq->payload = payload_new(body, body_len);
    c->flags |= CF_HTTP_WAIT | CF_READ_PAUSED;
    worker_update_events(w, c);
    orr_cluster_post(w->srv->cluster, rq);
}

void push_answer(orr_worker *w, orr_conn *c, const orr_registry_result *r) {
    bool keep = r->tag != 0;
    int status = 200;
    char json[48];
    if (r->op == ORR_OP_UNIQUE_SEND) {
        status = r->status == ORR_OK ? 200 : 404;
        snprintf(json, sizeof json, "{\"delivered\":%s}", r->status == ORR_OK ? "true" : "false");
    } else {
        snprintf(json, sizeof json, "{\"count\":%llu}", (unsigned long long)r->count);
    }
    orr_log(ORR_LOG_INFO, conn_ctx(w, c), "push %s %.*s: status=%d",
            r->op == ORR_OP_UNIQUE_SEND ? "unique" : "group",
            (int)(r->name_len > 100 ? 100 : r->name_len), r->name, status);
    c->flags &= (uint16_t) ~(CF_HTTP_WAIT | CF_READ_PAUSED);
    worker_update_events(w, c);
    size_t rest_n = c->in_len;
    uint8_t *rest = conn_in_take(c);
    out_cork(w, c);
    http_respond_simple(w, c, status, NULL, "application/json", json, strlen(json), keep);
    /* Requests that followed it in the same read: now. */
    if (rest_n && c->phase == PHASE_HTTP && !(c->flags & CF_CLOSE_AFTER_FLUSH))
        http_on_data(w, c, rest, rest_n);
    out_uncork(w);
    free(rest);
}

void push_handle(orr_worker *w, orr_conn *c, const orr_http_request *req, const uint8_t *body,
                 size_t body_len, bool keep) {
    int status = authorise(w, req);
    if (status == 404) {
        answer(w, c, req, 404, "{\"error\":\"not found\"}", keep);
        return;
    }
    if (status) {
        answer(w, c, req, status, "{\"error\":\"unauthorized\"}", keep);
        return;
    }
    if (!span_eq(req->method, "POST")) {
        answer(w, c, req, 405, "{\"error\":\"method not allowed\"}", keep);
        return;
    }
    if (body_len > w->srv->cfg.max_message_bytes) {
        answer(w, c, req, 413, "{\"error\":\"message too large\"}", false);
        return;
    }
    char buf[1024];
    size_t n = req->path.n - (sizeof PREFIX - 1);
    char *pool, *kind, *name;
    size_t pool_n, name_n;
    if (n >= sizeof buf) {
        answer(w, c, req, 404, "{\"error\":\"not found\"}", keep);
        return;
    }
    memcpy(buf, req->path.p + sizeof PREFIX - 1, n);
    buf[n] = '\0';
    bool unique = false;
    if (!split_path(buf, n, &pool, &pool_n, &kind, &name, &name_n) ||
        !((unique = strcmp(kind, "unique") == 0) || strcmp(kind, "groups") == 0) ||
        orr_pool_name_check(pool, pool_n) < 0 || name_n > ORR_NAME_MAX) {
        answer(w, c, req, 404, "{\"error\":\"not found\"}", keep);
        return;
    }
    /* A pool nobody uses on this node has no names and no members here;
     * with a cluster it is made for the request's time. */
    orr_pool *p = pools_acquire(w->srv, pool, pool_n, w->srv->cluster != NULL);
    if (w->srv->cluster && p) {
        uint64_t holder;
        bool local = unique && mailbox_local_holder(w, p, name, name_n, &holder);
        if (!local) {
            wait_for_cluster(w, c, p, unique, name, name_n, body, body_len, keep);
            return;
        }
    }
    if (unique) {
        bool ok = p && mailbox_send(w, p, name, name_n, body, body_len);
        answer(w, c, req, ok ? 200 : 404, ok ? "{\"delivered\":true}" : "{\"delivered\":false}",
               keep);
    } else {
        size_t count = p ? mailbox_publish(w, p, name, name_n, body, body_len) : 0;
        char json[48];
        snprintf(json, sizeof json, "{\"count\":%zu}", count);
        answer(w, c, req, 200, json, keep);
    }
    pool_unref(p);
}
