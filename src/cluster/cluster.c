/*
 * The registry protocol of the cluster thread: requests from workers, the
 * scripts they run in Redis, the answers (in request order), and what
 * other nodes send this one (see cluster.h for the keys, scripts.h for the
 * scripts, docs/CLUSTER.md for the guarantees; the thread itself and the
 * connection's life are in cluster_life.c).
 *
 * Workers keep answering from the node's own registry table (names held
 * here, members here) and hand the cluster what only Redis can answer:
 * claims on names, sends to names held elsewhere, memberships and
 * publications. Requests queued while one loop pass runs go out in one
 * write (hiredis buffers them): a burst of sends costs one round trip.
 */
#include "cluster/cluster_internal.h"

#include "common/hash.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

uint64_t cl_hash_bytes(const char *p, size_t n) {
    return orr_fnv1a(ORR_FNV_OFFSET, p, n);
}

void cl_set_why(orr_cluster *cl, const char *why) {
    pthread_mutex_lock(&cl->lock);
    snprintf(cl->why, sizeof cl->why, "%s", why);
    pthread_mutex_unlock(&cl->lock);
}

/* "<prefix><pool>\0<name>" */
size_t cl_pool_key(char *out, const char *prefix, const orr_pool *p, const char *name, size_t len) {
    size_t a = strlen(prefix), b = strlen(p->name);
    memcpy(out, prefix, a);
    memcpy(out + a, p->name, b);
    out[a + b] = '\0';
    memcpy(out + a + b + 1, name, len);
    return a + b + 1 + len;
}

size_t cl_conn_index_key(const orr_cluster *cl, char *out, uint64_t conn) {
    return (size_t)snprintf(out, KEY_MAX, "orr:c:%s%c%" PRIu64, cl->inst, '\0', conn);
}

size_t cl_node_index_key(const orr_cluster *cl, char *out) {
    return (size_t)snprintf(out, KEY_MAX, "orr:n:%s", cl->inst);
}

orr_worker *cl_worker_of(orr_cluster *cl, uint64_t conn) {
    unsigned wi = (unsigned)(conn >> 56);
    return wi < (unsigned)cl->srv->n_workers ? &cl->srv->workers[wi] : NULL;
}

void cl_flush_posts(orr_cluster *cl) {
    for (int i = 0; i < cl->srv->n_workers; i++) {
        if (!cl->post_head[i]) continue;
        worker_post_chain(&cl->srv->workers[i], cl->post_head[i], cl->post_tail[i]);
        cl->post_head[i] = cl->post_tail[i] = NULL;
    }
}

static void flush_answers(orr_cluster *cl) {
    while (cl->ans_head && cl->ans_head->done) {
        cl_answer *a = cl->ans_head;
        cl->ans_head = a->next;
        if (!cl->ans_head) cl->ans_tail = NULL;
        orr_worker *w = a->reply_to ? cl_worker_of(cl, a->reply_to) : NULL;
        a->res.r.name = a->res.name;
        if (w) {
            /* Handed over at the end of this loop pass, one batch per worker. */
            int wi = w->index;
            inbox_chain_add(&cl->post_head[wi], &cl->post_tail[wi], worker_result_msg(a->reply_to, &a->res.r));
        }
        free(a);
    }
}

/* Takes rq's place in the order of answers (before it may wait). */
static void answer_slot(orr_cluster *cl, orr_cl_req *rq) {
    if (!rq->reply_to) return;
    cl_answer *a = orr_xcalloc(1, sizeof *a);
    a->reply_to = rq->reply_to;
    if (cl->ans_tail)
        cl->ans_tail->next = a;
    else
        cl->ans_head = a;
    cl->ans_tail = a;
    rq->ans = a;
}

static void answer(orr_cluster *cl, orr_cl_req *rq, orr_registry_op op, int status, uint64_t count) {
    cl_answer *a = rq->ans;
    if (!a) return;
    rq->ans = NULL;
    a->res.r = (orr_registry_result){.op = op, .status = status, .count = count, .name_len = rq->name_len,
                                     .tag = rq->tag};
    memcpy(a->res.name, rq->name, rq->name_len);
    a->done = true;
    flush_answers(cl);
}

void cl_req_free(orr_cl_req *rq) {
    if (rq->payload) payload_unref(rq->payload);
    pool_unref(rq->pool);
    if (rq->ans) { /* nothing to say: do not hold the others */
        rq->ans->done = true;
        rq->ans->reply_to = 0;
    }
    free(rq);
}

/* ---- commands ---- */

typedef struct pending {
    orr_cluster *cl;
    orr_cl_req *rq;
} pending;

static void on_reply(orr_redis *r, redisReply *reply, void *priv);

/* EVALSHA script with keys and args; the reply goes to on_reply with rq
 * (which may be NULL: nobody waits). */
int cl_eval(orr_cluster *cl, int script, orr_cl_req *rq, int nkeys, const char **kv, const size_t *kl,
                int nargs) {
    const char *argv[16];
    size_t argl[16];
    char nk[8];
    argv[0] = "EVALSHA";
    argl[0] = 7;
    argv[1] = cl->sha[script];
    argl[1] = 40;
    argl[2] = (size_t)snprintf(nk, sizeof nk, "%d", nkeys);
    argv[2] = nk;
    for (int i = 0; i < nkeys + nargs; i++) {
        argv[3 + i] = kv[i];
        argl[3 + i] = kl[i];
    }
    pending *p = orr_xmalloc(sizeof *p);
    p->cl = cl;
    p->rq = rq;
    int rc = orr_redis_command(cl->cmd, on_reply, p, 3 + nkeys + nargs, argv, argl);
    if (rc < 0) {
        free(p);
        return rc;
    }
    cl->outstanding++;
    return 0;
}

chan *cl_chan_find(orr_cluster *cl, const char *name, size_t len, uint64_t h) {
    if (!cl->chans) return NULL;
    for (chan *c = cl->chans[h & cl->chan_mask]; c; c = c->next)
        if (c->hash == h && c->len == len && memcmp(c->bytes, name, len) == 0) return c;
    return NULL;
}

chan *cl_chan_add(orr_cluster *cl, const char *name, size_t len, uint64_t h, orr_pool *pool,
                      const char *group, size_t glen) {
    if (!cl->chans || cl->n_chans > cl->chan_mask) {
        size_t cap = cl->chans ? 2 * (cl->chan_mask + 1) : 64;
        chan **t = orr_xcalloc(cap, sizeof *t);
        if (cl->chans) {
            for (size_t i = 0; i <= cl->chan_mask; i++) {
                for (chan *c = cl->chans[i], *next; c; c = next) {
                    next = c->next;
                    c->next = t[c->hash & (cap - 1)];
                    t[c->hash & (cap - 1)] = c;
                }
            }
            free(cl->chans);
        }
        cl->chans = t;
        cl->chan_mask = cap - 1;
    }
    chan *c = orr_xcalloc(1, sizeof *c + len + glen);
    c->hash = h;
    c->len = len;
    c->pool = pool;
    pool_ref(pool);
    c->group_len = (uint16_t)glen;
    memcpy(c->bytes, name, len);
    memcpy(c->bytes + len, group, glen);
    c->next = cl->chans[h & cl->chan_mask];
    cl->chans[h & cl->chan_mask] = c;
    cl->n_chans++;
    return c;
}

void cl_chan_remove(orr_cluster *cl, chan *c) {
    chan **pp = &cl->chans[c->hash & cl->chan_mask];
    while (*pp != c) pp = &(*pp)->next;
    *pp = c->next;
    cl->n_chans--;
    pool_unref(c->pool);
    free(c);
}


void cl_subscribe(orr_cluster *cl, chan *c) {
    const char *argv[2] = {"SUBSCRIBE", c->bytes};
    size_t argl[2] = {9, c->len};
    if (orr_redis_command(cl->sub, cl_on_message, cl, 2, argv, argl) == 0) c->subscribing = true;
}

/* ---- requests ---- */

static void run_join(orr_cluster *cl, orr_cl_req *rq) {
    if (!orr_registry_is_member(cl->srv->registry, rq->pool->idx, rq->name, rq->name_len, rq->conn)) {
        /* It left (or ended) while the subscription was on its way: its
         * GONE or LEAVE went first, so writing it now would outlive it. */
        answer(cl, rq, ORR_OP_GROUP_JOIN, ORR_OK, 0);
        cl_req_free(rq);
        flush_answers(cl);
        return;
    }
    char gk[KEY_MAX], ci[KEY_MAX], ni[KEY_MAX], conn[24];
    const char *kv[5] = {gk, ci, ni, cl->inst, conn};
    size_t kl[5] = {cl_pool_key(gk, "orr:g:", rq->pool, rq->name, rq->name_len), cl_conn_index_key(cl, ci, rq->conn),
                    cl_node_index_key(cl, ni), cl->inst_len,
                    (size_t)snprintf(conn, sizeof conn, "%" PRIu64, rq->conn)};
    if (cl_eval(cl, SC_JOIN, rq, 3, kv, kl, 2) < 0) {
        answer(cl, rq, ORR_OP_GROUP_JOIN, ORR_OK, 0); /* down: it stands locally, written back later */
        cl_req_free(rq);
    }
}

void cl_handle_down(orr_cluster *cl, orr_cl_req *rq) {
    switch (rq->kind) {
    case CL_REGISTER: answer(cl, rq, ORR_OP_UNIQUE_REGISTER, ORR_OK, 0); break;
    case CL_SEND:
        atomic_fetch_add_explicit(&cl->send_failures, 1, memory_order_relaxed);
        answer(cl, rq, ORR_OP_UNIQUE_SEND, ORR_ENOTFOUND, 0);
        break;
    case CL_JOIN: answer(cl, rq, ORR_OP_GROUP_JOIN, ORR_OK, 0); break;
    case CL_PUBLISH: answer(cl, rq, ORR_OP_GROUP_PUBLISH, ORR_OK, rq->local_count); break;
    case CL_ANSWER: answer(cl, rq, rq->op, rq->status, rq->count); break;
    default: answer(cl, rq, rq->op, rq->status, rq->count); break; /* rewritten from the local table on return */
    }
    cl_req_free(rq);
    flush_answers(cl);
}

void cl_handle_req(orr_cluster *cl, orr_cl_req *rq) {
    answer_slot(cl, rq);
    if (rq->kind == CL_ANSWER) { /* known on this node already */
        answer(cl, rq, rq->op, rq->status, rq->count);
        cl_req_free(rq);
        return;
    }
    if (!atomic_load_explicit(&cl->ready, memory_order_relaxed)) {
        cl_handle_down(cl, rq);
        return;
    }
    char k1[KEY_MAX], k2[KEY_MAX], k3[KEY_MAX], conn[24], since[24];
    size_t cn = (size_t)snprintf(conn, sizeof conn, "%" PRIu64, rq->conn);
    int rc = 0;
    switch (rq->kind) {
    case CL_REGISTER: {
        size_t sn = (size_t)snprintf(since, sizeof since, "%" PRId64, rq->since_ms);
        const char *kv[7] = {k1, k2, k3, cl->inst, conn, since, "0"};
        size_t kl[7] = {cl_pool_key(k1, "orr:u:", rq->pool, rq->name, rq->name_len), cl_conn_index_key(cl, k2, rq->conn),
                        cl_node_index_key(cl, k3), cl->inst_len, cn, sn, 1};
        rc = cl_eval(cl, SC_REGISTER, rq, 3, kv, kl, 4);
        break;
    }
    case CL_UNREGISTER: {
        const char *kv[4] = {k1, k2, cl->inst, conn};
        size_t kl[4] = {cl_pool_key(k1, "orr:u:", rq->pool, rq->name, rq->name_len), cl_conn_index_key(cl, k2, rq->conn),
                        cl->inst_len, cn};
        rc = cl_eval(cl, SC_UNREGISTER, rq, 2, kv, kl, 2);
        break;
    }
    case CL_SEND: {
        const orr_payload *m = rq->payload;
        const char *kv[2] = {k1, (const char *)m->bytes + PAYLOAD_HDR_ROOM};
        size_t kl[2] = {cl_pool_key(k1, "orr:u:", rq->pool, rq->name, rq->name_len), m->len};
        rc = cl_eval(cl, SC_SEND, rq, 1, kv, kl, 1);
        break;
    }
    case CL_JOIN: {
        size_t clen = cl_pool_key(k1, "orr:gc:", rq->pool, rq->name, rq->name_len);
        uint64_t h = cl_hash_bytes(k1, clen);
        chan *c = cl_chan_find(cl, k1, clen, h);
        if (!c) c = cl_chan_add(cl, k1, clen, h, rq->pool, rq->name, rq->name_len);
        if (c->subscribed) {
            run_join(cl, rq);
            return;
        }
        /* Answered once this node listens to the group: a publication that
         * follows the answer reaches it. */
        rq->next = NULL;
        if (c->waiting_tail)
            c->waiting_tail->next = rq;
        else
            c->waiting = rq;
        c->waiting_tail = rq;
        if (!c->subscribing) cl_subscribe(cl, c);
        return;
    }
    case CL_LEAVE: {
        const char *kv[4] = {k1, k2, cl->inst, conn};
        size_t kl[4] = {cl_pool_key(k1, "orr:g:", rq->pool, rq->name, rq->name_len), cl_conn_index_key(cl, k2, rq->conn),
                        cl->inst_len, cn};
        cl->reconcile = true;
        rc = cl_eval(cl, SC_LEAVE, rq, 2, kv, kl, 2);
        break;
    }
    case CL_PUBLISH: {
        const orr_payload *m = rq->payload;
        size_t clen = cl_pool_key(k2, "orr:gc:", rq->pool, rq->name, rq->name_len);
        const char *kv[4] = {k1, k2, cl->inst, (const char *)m->bytes + PAYLOAD_HDR_ROOM};
        size_t kl[4] = {cl_pool_key(k1, "orr:g:", rq->pool, rq->name, rq->name_len), clen, cl->inst_len, m->len};
        rc = cl_eval(cl, SC_PUBLISH, rq, 1, kv, kl, 3);
        break;
    }
    case CL_GONE: {
        const char *kv[2] = {cl->inst, conn};
        size_t kl[2] = {cl->inst_len, cn};
        cl->reconcile = true;
        rc = cl_eval(cl, SC_GONE, rq, 0, kv, kl, 2);
        break;
    }
    case CL_ANSWER: break;
    }
    if (rc < 0) cl_handle_down(cl, rq);
}

static void on_reply(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    pending *p = priv;
    orr_cluster *cl = p->cl;
    orr_cl_req *rq = p->rq;
    free(p);
    cl->outstanding--;
    if (!rq) return;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        orr_log(ORR_LOG_ERROR, NULL, "cluster: redis: %.*s", (int)reply->len, reply->str);
    bool ok = reply && reply->type == REDIS_REPLY_INTEGER;
    long long v = ok ? reply->integer : 0;
    switch (rq->kind) {
    case CL_REGISTER:
        /* Lost on the way: it stands locally and is written back. */
        answer(cl, rq, ORR_OP_UNIQUE_REGISTER, !ok || v == 1 ? ORR_OK : ORR_ETAKEN, 0);
        break;
    case CL_SEND:
        if (!ok) atomic_fetch_add_explicit(&cl->send_failures, 1, memory_order_relaxed);
        if (v > 0) atomic_fetch_add_explicit(&cl->sent, 1, memory_order_relaxed);
        answer(cl, rq, ORR_OP_UNIQUE_SEND, v > 0 ? ORR_OK : ORR_ENOTFOUND, v > 0);
        break;
    case CL_JOIN: answer(cl, rq, ORR_OP_GROUP_JOIN, ORR_OK, 0); break;
    case CL_LEAVE:
    case CL_UNREGISTER:
        /* Answered once Redis applied it: a publication after the answer
         * no longer counts it. */
        answer(cl, rq, rq->op, rq->status, rq->count);
        break;
    case CL_PUBLISH: {
        uint64_t n = ok ? (uint64_t)v : rq->local_count;
        if (ok && (uint64_t)v > rq->local_count) atomic_fetch_add_explicit(&cl->sent, 1, memory_order_relaxed);
        answer(cl, rq, ORR_OP_GROUP_PUBLISH, ORR_OK, n);
        break;
    }
    default: break;
    }
    cl_req_free(rq);
    flush_answers(cl);
}

/* ---- what other nodes send us ---- */

static void deliver_inbox(orr_cluster *cl, const char *p, size_t n) {
    if (n < 2) return;
    char kind = p[0];
    const char *nl = memchr(p, '\n', n);
    size_t idlen = nl ? (size_t)(nl - p - 1) : n - 1;
    char idbuf[24];
    if (idlen == 0 || idlen >= sizeof idbuf) return;
    memcpy(idbuf, p + 1, idlen);
    idbuf[idlen] = '\0';
    uint64_t conn = strtoull(idbuf, NULL, 10);
    orr_worker *w = cl_worker_of(cl, conn);
    if (!w) return;
    if (kind == 'K') {
        atomic_fetch_add_explicit(&cl->conflicts, 1, memory_order_relaxed);
        worker_post_kill(w, conn);
        return;
    }
    if (kind != 'M' || !nl) return;
    atomic_fetch_add_explicit(&cl->received, 1, memory_order_relaxed);
    orr_payload *m = payload_new(nl + 1, n - (size_t)(nl + 1 - p));
    worker_post_deliver(w, NULL, m, &conn, 1);
    payload_unref(m);
}

static void deliver_group(orr_cluster *cl, const char *channel, size_t clen, const char *p, size_t n) {
    const char *nl = memchr(p, '\n', n);
    if (!nl) return;
    if ((size_t)(nl - p) == cl->inst_len && memcmp(p, cl->inst, cl->inst_len) == 0) return; /* ours */
    chan *c = cl_chan_find(cl, channel, clen, cl_hash_bytes(channel, clen));
    if (!c) return;
    orr_idvec *ids = &cl->scratch;
    ids->n = 0;
    size_t k = orr_registry_members(cl->srv->registry, c->pool->idx, c->bytes + c->len, c->group_len, ids);
    if (!k) return;
    atomic_fetch_add_explicit(&cl->received, 1, memory_order_relaxed);
    orr_payload *m = payload_new(nl + 1, n - (size_t)(nl + 1 - p));
    mailbox_post(cl->srv, NULL, ids->ids, k, m);
    payload_unref(m);
}

static bool is_inbox(const orr_cluster *cl, const char *ch, size_t n) {
    return n == 10 + cl->inst_len && memcmp(ch, "orr:inbox:", 10) == 0 && memcmp(ch + 10, cl->inst, cl->inst_len) == 0;
}

void cl_on_message(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    orr_cluster *cl = priv;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    redisReply *kind = reply->element[0], *ch = reply->element[1], *body = reply->element[2];
    if (kind->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING) return;
    if (kind->len == 7 && memcmp(kind->str, "message", 7) == 0 && body->type == REDIS_REPLY_STRING) {
        if (is_inbox(cl, ch->str, ch->len))
            deliver_inbox(cl, body->str, body->len);
        else
            deliver_group(cl, ch->str, ch->len, body->str, body->len);
        return;
    }
    if (kind->len == 9 && memcmp(kind->str, "subscribe", 9) == 0) {
        if (is_inbox(cl, ch->str, ch->len)) {
            cl->inbox_subscribed = true;
            cl_check_ready(cl);
            return;
        }
        chan *c = cl_chan_find(cl, ch->str, ch->len, cl_hash_bytes(ch->str, ch->len));
        if (!c) return;
        c->subscribed = true;
        c->subscribing = false;
        orr_cl_req *rq = c->waiting;
        c->waiting = c->waiting_tail = NULL;
        while (rq) {
            orr_cl_req *next = rq->next;
            if (atomic_load_explicit(&cl->ready, memory_order_relaxed))
                run_join(cl, rq);
            else
                cl_handle_down(cl, rq);
            rq = next;
        }
        /* Nobody here any more (they left while it was on its way, or it was
         * renewed after an outage): a reconcile skips a channel while it is
         * subscribing, so ask for one now that it is not, or the channel and
         * its pool would stay until some other leave. */
        if (!orr_registry_group_size(cl->srv->registry, c->pool->idx, c->bytes + c->len, c->group_len))
            cl->reconcile = true;
    }
}
