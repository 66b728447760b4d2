/*
 * The cluster thread: this node's share of the registry in Redis (see
 * cluster.h for the keys, scripts.h for the scripts, docs/CLUSTER.md for
 * the guarantees).
 *
 * Workers keep answering from the node's own registry table (names held
 * here, members here) and hand the cluster what only Redis can answer:
 * claims on names, sends to names held elsewhere, memberships and
 * publications. Requests queued while one loop pass runs go out in one
 * write (hiredis buffers them): a burst of sends costs one round trip.
 *
 * While Redis cannot be reached: names and members on this node keep
 * working; a send to a name held elsewhere answers not delivered (and is
 * counted); registrations and joins succeed locally and are written back
 * when Redis returns, after this node's old entries are cleared.
 */
#include "cluster/cluster.h"

#include "cluster/redis.h"
#include "cluster/scripts.h"
#include "common/log.h"
#include "server/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define TICK_MS 50
#define KEY_MAX (16 + POOL_NAME_MAX + ORR_NAME_MAX + 96)

/* A group channel this node listens to while it has members there. */
typedef struct chan {
    struct chan *next;
    uint64_t hash;
    bool subscribed;   /* confirmed by Redis */
    bool subscribing;  /* SUBSCRIBE sent */
    orr_cl_req *waiting, *waiting_tail; /* joins waiting for the subscription */
    orr_pool *pool;
    uint16_t group_len;
    size_t len;
    char bytes[]; /* the channel name, then the group */
} chan;

/* Results leave in the order their requests arrived. */
typedef struct cl_answer {
    struct cl_answer *next;
    bool done;
    uint64_t reply_to;
    reg_pending res;
} cl_answer;

struct orr_cluster {
    orr_server *srv;
    cl_answer *ans_head, *ans_tail;
    pthread_t thread;
    int epfd, event_fd, timer_fd;
    orr_loop_handler ev_h, timer_h;
    orr_redis *cmd, *sub;
    char inst[128];
    size_t inst_len;
    char sha[SC_N][41];
    /* the mailbox */
    pthread_mutex_t lock;
    orr_cl_req *head, *tail;
    atomic_bool stop, draining;
    bool drain_marked;
    /* state, on the cluster thread */
    bool cmd_up, sub_up, inbox_subscribed, was_ready;
    atomic_bool ready;
    char why[160]; /* guarded by lock */
    int64_t now_ms, next_beat, next_reap;
    bool reconcile;
    size_t outstanding; /* replies awaited */
    chan **chans;
    size_t chan_mask, n_chans;
    orr_idvec scratch;
    /* metrics */
    atomic_uint_fast64_t sent, received, send_failures, reaped, conflicts;
};

/* ---- small helpers ---- */

static uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

static void set_why(orr_cluster *cl, const char *why) {
    pthread_mutex_lock(&cl->lock);
    snprintf(cl->why, sizeof cl->why, "%s", why);
    pthread_mutex_unlock(&cl->lock);
}

/* "<prefix><pool>\0<name>" */
static size_t pool_key(char *out, const char *prefix, const orr_pool *p, const char *name, size_t len) {
    size_t a = strlen(prefix), b = strlen(p->name);
    memcpy(out, prefix, a);
    memcpy(out + a, p->name, b);
    out[a + b] = '\0';
    memcpy(out + a + b + 1, name, len);
    return a + b + 1 + len;
}

static size_t conn_index_key(const orr_cluster *cl, char *out, uint64_t conn) {
    return (size_t)snprintf(out, KEY_MAX, "orr:c:%s%c%" PRIu64, cl->inst, '\0', conn);
}

static size_t node_index_key(const orr_cluster *cl, char *out) {
    return (size_t)snprintf(out, KEY_MAX, "orr:n:%s", cl->inst);
}

static orr_worker *worker_of(orr_cluster *cl, uint64_t conn) {
    unsigned wi = (unsigned)(conn >> 56);
    return wi < (unsigned)cl->srv->n_workers ? &cl->srv->workers[wi] : NULL;
}

static void flush_answers(orr_cluster *cl) {
    while (cl->ans_head && cl->ans_head->done) {
        cl_answer *a = cl->ans_head;
        cl->ans_head = a->next;
        if (!cl->ans_head) cl->ans_tail = NULL;
        orr_worker *w = a->reply_to ? worker_of(cl, a->reply_to) : NULL;
        a->res.r.name = a->res.name;
        if (w) worker_post_result(w, a->reply_to, &a->res.r);
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

static void req_free(orr_cl_req *rq) {
    if (rq->payload) payload_unref(rq->payload);
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
static int eval(orr_cluster *cl, int script, orr_cl_req *rq, int nkeys, const char **kv, const size_t *kl,
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

static chan *chan_find(orr_cluster *cl, const char *name, size_t len, uint64_t h) {
    if (!cl->chans) return NULL;
    for (chan *c = cl->chans[h & cl->chan_mask]; c; c = c->next)
        if (c->hash == h && c->len == len && memcmp(c->bytes, name, len) == 0) return c;
    return NULL;
}

static chan *chan_add(orr_cluster *cl, const char *name, size_t len, uint64_t h, orr_pool *pool,
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
    c->group_len = (uint16_t)glen;
    memcpy(c->bytes, name, len);
    memcpy(c->bytes + len, group, glen);
    c->next = cl->chans[h & cl->chan_mask];
    cl->chans[h & cl->chan_mask] = c;
    cl->n_chans++;
    return c;
}

static void chan_remove(orr_cluster *cl, chan *c) {
    chan **pp = &cl->chans[c->hash & cl->chan_mask];
    while (*pp != c) pp = &(*pp)->next;
    *pp = c->next;
    cl->n_chans--;
    free(c);
}

static void run_join(orr_cluster *cl, orr_cl_req *rq);
static void on_message(orr_redis *r, redisReply *reply, void *priv);

static void subscribe(orr_cluster *cl, chan *c) {
    const char *argv[2] = {"SUBSCRIBE", c->bytes};
    size_t argl[2] = {9, c->len};
    if (orr_redis_command(cl->sub, on_message, cl, 2, argv, argl) == 0) c->subscribing = true;
}

/* ---- requests ---- */

static void run_join(orr_cluster *cl, orr_cl_req *rq) {
    if (!orr_registry_is_member(cl->srv->registry, rq->pool->idx, rq->name, rq->name_len, rq->conn)) {
        /* It left (or ended) while the subscription was on its way: its
         * GONE or LEAVE went first, so writing it now would outlive it. */
        answer(cl, rq, ORR_OP_GROUP_JOIN, ORR_OK, 0);
        req_free(rq);
        flush_answers(cl);
        return;
    }
    char gk[KEY_MAX], ci[KEY_MAX], ni[KEY_MAX], conn[24];
    const char *kv[5] = {gk, ci, ni, cl->inst, conn};
    size_t kl[5] = {pool_key(gk, "orr:g:", rq->pool, rq->name, rq->name_len), conn_index_key(cl, ci, rq->conn),
                    node_index_key(cl, ni), cl->inst_len,
                    (size_t)snprintf(conn, sizeof conn, "%" PRIu64, rq->conn)};
    if (eval(cl, SC_JOIN, rq, 3, kv, kl, 2) < 0) {
        answer(cl, rq, ORR_OP_GROUP_JOIN, ORR_OK, 0); /* down: it stands locally, written back later */
        req_free(rq);
    }
}

static void handle_down(orr_cluster *cl, orr_cl_req *rq) {
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
    req_free(rq);
    flush_answers(cl);
}

static void handle_req(orr_cluster *cl, orr_cl_req *rq) {
    answer_slot(cl, rq);
    if (rq->kind == CL_ANSWER) { /* known on this node already */
        answer(cl, rq, rq->op, rq->status, rq->count);
        req_free(rq);
        return;
    }
    if (!atomic_load_explicit(&cl->ready, memory_order_relaxed)) {
        handle_down(cl, rq);
        return;
    }
    char k1[KEY_MAX], k2[KEY_MAX], k3[KEY_MAX], conn[24], since[24];
    size_t cn = (size_t)snprintf(conn, sizeof conn, "%" PRIu64, rq->conn);
    int rc = 0;
    switch (rq->kind) {
    case CL_REGISTER: {
        size_t sn = (size_t)snprintf(since, sizeof since, "%" PRId64, rq->since_ms);
        const char *kv[7] = {k1, k2, k3, cl->inst, conn, since, "0"};
        size_t kl[7] = {pool_key(k1, "orr:u:", rq->pool, rq->name, rq->name_len), conn_index_key(cl, k2, rq->conn),
                        node_index_key(cl, k3), cl->inst_len, cn, sn, 1};
        rc = eval(cl, SC_REGISTER, rq, 3, kv, kl, 4);
        break;
    }
    case CL_UNREGISTER: {
        const char *kv[4] = {k1, k2, cl->inst, conn};
        size_t kl[4] = {pool_key(k1, "orr:u:", rq->pool, rq->name, rq->name_len), conn_index_key(cl, k2, rq->conn),
                        cl->inst_len, cn};
        rc = eval(cl, SC_UNREGISTER, rq, 2, kv, kl, 2);
        break;
    }
    case CL_SEND: {
        const orr_payload *m = rq->payload;
        const char *kv[2] = {k1, (const char *)m->bytes + PAYLOAD_HDR_ROOM};
        size_t kl[2] = {pool_key(k1, "orr:u:", rq->pool, rq->name, rq->name_len), m->len};
        rc = eval(cl, SC_SEND, rq, 1, kv, kl, 1);
        break;
    }
    case CL_JOIN: {
        size_t clen = pool_key(k1, "orr:gc:", rq->pool, rq->name, rq->name_len);
        uint64_t h = hash_bytes(k1, clen);
        chan *c = chan_find(cl, k1, clen, h);
        if (!c) c = chan_add(cl, k1, clen, h, rq->pool, rq->name, rq->name_len);
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
        if (!c->subscribing) subscribe(cl, c);
        return;
    }
    case CL_LEAVE: {
        const char *kv[4] = {k1, k2, cl->inst, conn};
        size_t kl[4] = {pool_key(k1, "orr:g:", rq->pool, rq->name, rq->name_len), conn_index_key(cl, k2, rq->conn),
                        cl->inst_len, cn};
        cl->reconcile = true;
        rc = eval(cl, SC_LEAVE, rq, 2, kv, kl, 2);
        break;
    }
    case CL_PUBLISH: {
        const orr_payload *m = rq->payload;
        size_t clen = pool_key(k2, "orr:gc:", rq->pool, rq->name, rq->name_len);
        const char *kv[4] = {k1, k2, cl->inst, (const char *)m->bytes + PAYLOAD_HDR_ROOM};
        size_t kl[4] = {pool_key(k1, "orr:g:", rq->pool, rq->name, rq->name_len), clen, cl->inst_len, m->len};
        rc = eval(cl, SC_PUBLISH, rq, 1, kv, kl, 3);
        break;
    }
    case CL_GONE: {
        const char *kv[2] = {cl->inst, conn};
        size_t kl[2] = {cl->inst_len, cn};
        cl->reconcile = true;
        rc = eval(cl, SC_GONE, rq, 0, kv, kl, 2);
        break;
    }
    case CL_ANSWER: break;
    }
    if (rc < 0) handle_down(cl, rq);
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
    req_free(rq);
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
    orr_worker *w = worker_of(cl, conn);
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
    chan *c = chan_find(cl, channel, clen, hash_bytes(channel, clen));
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

static void check_ready(orr_cluster *cl);

static void on_message(orr_redis *r, redisReply *reply, void *priv) {
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
            check_ready(cl);
            return;
        }
        chan *c = chan_find(cl, ch->str, ch->len, hash_bytes(ch->str, ch->len));
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
                handle_down(cl, rq);
            rq = next;
        }
    }
}

/* ---- writing this node's part back, after (re)connecting ---- */

typedef struct writeback {
    orr_cluster *cl;
    size_t names, members;
} writeback;

static orr_pool *pool_by_idx(orr_cluster *cl, uint32_t idx) {
    return idx < atomic_load_explicit(&cl->srv->pools.n, memory_order_acquire) ? cl->srv->pools.all[idx] : NULL;
}

typedef struct wb_pending {
    orr_cluster *cl;
    uint64_t conn; /* a name's holder; 0 for a membership */
} wb_pending;

/* A name lost to a newer registration elsewhere: its connection closes (1008). */
static void on_writeback_reply(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    wb_pending *p = priv;
    orr_cluster *cl = p->cl;
    cl->outstanding--;
    if (p->conn && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        orr_worker *w = worker_of(cl, p->conn);
        atomic_fetch_add_explicit(&cl->conflicts, 1, memory_order_relaxed);
        if (w) worker_post_kill(w, p->conn);
    }
    free(p);
}

static void write_one(void *arg, bool is_group, uint32_t pool_idx, const char *bytes, size_t len, uint64_t conn,
                      int64_t since_ms) {
    writeback *wb = arg;
    orr_cluster *cl = wb->cl;
    orr_pool *pool = pool_by_idx(cl, pool_idx);
    if (!pool) return;
    char key[KEY_MAX], ci[KEY_MAX], ni[KEY_MAX], cs[24], ss[24];
    const char *argv[10] = {"EVALSHA", cl->sha[is_group ? SC_JOIN : SC_REGISTER], "3", key, ci, ni, cl->inst, cs, ss, "1"};
    size_t argl[10] = {7, 40, 1,
                       pool_key(key, is_group ? "orr:g:" : "orr:u:", pool, bytes, len),
                       conn_index_key(cl, ci, conn), node_index_key(cl, ni), cl->inst_len,
                       (size_t)snprintf(cs, sizeof cs, "%" PRIu64, conn),
                       (size_t)snprintf(ss, sizeof ss, "%" PRId64, since_ms), 1};
    wb_pending *p = orr_xmalloc(sizeof *p);
    p->cl = cl;
    p->conn = is_group ? 0 : conn;
    if (is_group) wb->members++; else wb->names++;
    if (orr_redis_command(cl->cmd, on_writeback_reply, p, is_group ? 8 : 10, argv, argl) == 0)
        cl->outstanding++;
    else
        free(p);
}

static void write_back(orr_cluster *cl) {
    /* Clear this instance's entries (a CLIENT KILL or a partition kept
     * them; a restarted Redis has none), then write the local table back. */
    const char *kv[2] = {cl->inst, "1"};
    size_t kl[2] = {cl->inst_len, 1};
    eval(cl, SC_REAP, NULL, 0, kv, kl, 2);
    writeback wb = {.cl = cl};
    orr_registry_foreach(cl->srv->registry, write_one, &wb);
    orr_log(ORR_LOG_INFO, NULL, "cluster: %s: wrote back %zu names and %zu memberships", cl->inst, wb.names,
            wb.members);
}

/* ---- liveness and the reaper ---- */

static void on_reap_reply(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    orr_cluster *cl = priv;
    cl->outstanding--;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        atomic_fetch_add_explicit(&cl->reaped, (uint64_t)reply->integer, memory_order_relaxed);
        orr_log(ORR_LOG_INFO, NULL, "cluster: reaped %lld node(s) whose liveness expired", reply->integer);
    }
}

static void on_plain_reply(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    orr_cluster *cl = priv;
    cl->outstanding--;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        orr_log(ORR_LOG_ERROR, NULL, "cluster: redis: %.*s", (int)reply->len, reply->str);
}

static void plain(orr_cluster *cl, int argc, const char **argv, const size_t *argl) {
    if (orr_redis_command(cl->cmd, on_plain_reply, cl, argc, argv, argl) == 0) cl->outstanding++;
}

static void heartbeat(orr_cluster *cl) {
    char key[KEY_MAX], ttl[24];
    size_t kn = (size_t)snprintf(key, sizeof key, "orr:alive:%s", cl->inst);
    size_t tn = (size_t)snprintf(ttl, sizeof ttl, "%u", cl->srv->cfg.cluster.node_ttl_ms);
    const char *a1[5] = {"SET", key, "1", "PX", ttl};
    size_t l1[5] = {3, kn, 1, 2, tn};
    plain(cl, 5, a1, l1);
    const char *a2[3] = {"SADD", "orr:nodes", cl->inst};
    size_t l2[3] = {4, 9, cl->inst_len};
    plain(cl, 3, a2, l2);
}

static void mark_draining(orr_cluster *cl) {
    char key[KEY_MAX], ttl[24];
    size_t kn = (size_t)snprintf(key, sizeof key, "orr:draining:%s", cl->inst);
    size_t tn = (size_t)snprintf(ttl, sizeof ttl, "%u", cl->srv->cfg.cluster.node_ttl_ms + cl->srv->cfg.drain_ms +
                                                           cl->srv->cfg.close_timeout_ms);
    const char *a[5] = {"SET", key, "1", "PX", ttl};
    size_t l[5] = {3, kn, 1, 2, tn};
    plain(cl, 5, a, l);
    cl->drain_marked = true;
}

static void reap(orr_cluster *cl) {
    const char *argv[5] = {"EVALSHA", cl->sha[SC_REAP], "0", cl->inst, "0"};
    size_t argl[5] = {7, 40, 1, cl->inst_len, 1};
    if (orr_redis_command(cl->cmd, on_reap_reply, cl, 5, argv, argl) == 0) cl->outstanding++;
}

/* Stop listening to groups with no member here any more. */
static void reconcile(orr_cluster *cl) {
    cl->reconcile = false;
    if (!cl->chans) return;
    for (size_t i = 0; i <= cl->chan_mask; i++) {
        for (chan *c = cl->chans[i], *next; c; c = next) {
            next = c->next;
            if (c->waiting || c->subscribing) continue;
            if (orr_registry_group_size(cl->srv->registry, c->pool->idx, c->bytes + c->len, c->group_len)) continue;
            if (c->subscribed && cl->sub_up) {
                const char *argv[2] = {"UNSUBSCRIBE", c->bytes};
                size_t argl[2] = {11, c->len};
                orr_redis_command(cl->sub, NULL, NULL, 2, argv, argl);
            }
            chan_remove(cl, c);
        }
    }
}

/* ---- connection state ---- */

static void load_scripts(orr_cluster *cl) {
    for (int i = 0; i < SC_N; i++) {
        const char *argv[3] = {"SCRIPT", "LOAD", orr_cluster_scripts[i]};
        size_t argl[3] = {6, 4, strlen(orr_cluster_scripts[i])};
        plain(cl, 3, argv, argl);
    }
}

static void subscribe_all(orr_cluster *cl) {
    char inbox[KEY_MAX];
    size_t n = (size_t)snprintf(inbox, sizeof inbox, "orr:inbox:%s", cl->inst);
    const char *argv[2] = {"SUBSCRIBE", inbox};
    size_t argl[2] = {9, n};
    orr_redis_command(cl->sub, on_message, cl, 2, argv, argl);
    if (!cl->chans) return;
    for (size_t i = 0; i <= cl->chan_mask; i++)
        for (chan *c = cl->chans[i]; c; c = c->next) {
            c->subscribed = false;
            subscribe(cl, c);
        }
}

/* Groups with members here but no channel yet (joined while Redis was
 * away): listen to them too. */
static void add_chan_for(void *arg, bool is_group, uint32_t pool_idx, const char *bytes, size_t len, uint64_t conn,
                         int64_t since_ms) {
    (void)conn;
    (void)since_ms;
    orr_cluster *cl = arg;
    if (!is_group) return;
    orr_pool *pool = pool_by_idx(cl, pool_idx);
    if (!pool) return;
    char k[KEY_MAX];
    size_t klen = pool_key(k, "orr:gc:", pool, bytes, len);
    uint64_t h = hash_bytes(k, klen);
    if (!chan_find(cl, k, klen, h)) chan_add(cl, k, klen, h, pool, bytes, len);
}

static void check_ready(orr_cluster *cl) {
    bool ready = cl->cmd_up && cl->sub_up && cl->inbox_subscribed;
    if (ready == atomic_load_explicit(&cl->ready, memory_order_relaxed)) return;
    if (ready) {
        /* Liveness first, so that our write-back is not taken for a dead
         * node's entries. */
        heartbeat(cl);
        atomic_store_explicit(&cl->ready, true, memory_order_relaxed);
        write_back(cl);
        cl->next_beat = cl->now_ms + cl->srv->cfg.cluster.heartbeat_ms;
        set_why(cl, "");
        orr_log(ORR_LOG_INFO, NULL, "cluster: %s: ready", cl->inst);
    } else {
        atomic_store_explicit(&cl->ready, false, memory_order_relaxed);
    }
}

static void on_state(orr_redis *r, int up, const char *why, void *priv) {
    orr_cluster *cl = priv;
    if (r == cl->cmd) {
        cl->cmd_up = up;
        if (up) load_scripts(cl);
    } else {
        cl->sub_up = up;
        cl->inbox_subscribed = false;
        if (up) {
            orr_registry_foreach(cl->srv->registry, add_chan_for, cl);
            subscribe_all(cl);
        } else if (cl->chans) {
            /* Joins waiting for a subscription are answered now (they stand
             * locally and are written back): the answers behind them must
             * not wait for Redis to come back. */
            for (size_t i = 0; i <= cl->chan_mask; i++) {
                for (chan *c = cl->chans[i]; c; c = c->next) {
                    c->subscribed = c->subscribing = false;
                    orr_cl_req *rq = c->waiting;
                    c->waiting = c->waiting_tail = NULL;
                    while (rq) {
                        orr_cl_req *next = rq->next;
                        handle_down(cl, rq);
                        rq = next;
                    }
                }
            }
        }
    }
    if (!up) {
        char buf[160];
        snprintf(buf, sizeof buf, "redis unreachable: %s", why && *why ? why : "connection lost");
        set_why(cl, buf);
        if (atomic_load_explicit(&cl->ready, memory_order_relaxed))
            orr_log(ORR_LOG_WARN, NULL, "cluster: %s: %s", cl->inst, buf);
    }
    check_ready(cl);
}

/* ---- the thread ---- */

static void take_mailbox(orr_cluster *cl) {
    uint64_t n;
    ssize_t r = read(cl->event_fd, &n, sizeof n);
    (void)r;
    pthread_mutex_lock(&cl->lock);
    orr_cl_req *rq = cl->head;
    cl->head = cl->tail = NULL;
    pthread_mutex_unlock(&cl->lock);
    while (rq) {
        orr_cl_req *next = rq->next;
        handle_req(cl, rq);
        rq = next;
    }
}

static void mark_draining(orr_cluster *cl);

static void on_event_fd(orr_loop_handler *h, uint32_t events) {
    (void)events;
    orr_cluster *cl = ORR_CONTAINER_OF(h, orr_cluster, ev_h);
    /* Marked before the drain's closes are handled: a client that comes
     * back elsewhere finds its name free. */
    if (atomic_load_explicit(&cl->draining, memory_order_relaxed) && !cl->drain_marked &&
        atomic_load_explicit(&cl->ready, memory_order_relaxed))
        mark_draining(cl);
    take_mailbox(cl);
}

static void on_timer(orr_loop_handler *h, uint32_t events) {
    (void)events;
    orr_cluster *cl = ORR_CONTAINER_OF(h, orr_cluster, timer_h);
    uint64_t n;
    ssize_t r = read(cl->timer_fd, &n, sizeof n);
    (void)r;
    orr_redis_tick(cl->cmd, cl->now_ms);
    orr_redis_tick(cl->sub, cl->now_ms);
    if (!atomic_load_explicit(&cl->ready, memory_order_relaxed)) return;
    if (cl->now_ms >= cl->next_beat) {
        heartbeat(cl);
        cl->next_beat = cl->now_ms + cl->srv->cfg.cluster.heartbeat_ms;
    }
    if (cl->now_ms >= cl->next_reap) {
        reap(cl);
        uint32_t hb = cl->srv->cfg.cluster.heartbeat_ms;
        uint32_t jitter = 0;
        getrandom(&jitter, sizeof jitter, GRND_NONBLOCK);
        cl->next_reap = cl->now_ms + hb + (hb ? jitter % hb : 0);
    }
    if (cl->reconcile) reconcile(cl);
    if (atomic_load_explicit(&cl->draining, memory_order_relaxed) && !cl->drain_marked) mark_draining(cl);
}

static void *cluster_main(void *arg) {
    orr_cluster *cl = arg;
    struct epoll_event evs[64];
    int64_t stop_deadline = 0;
    for (;;) {
        bool stopping = atomic_load_explicit(&cl->stop, memory_order_acquire);
        if (stopping && !stop_deadline) {
            stop_deadline = mono_ms() + 2000;
            take_mailbox(cl); /* the last connections' GONE */
            if (atomic_load_explicit(&cl->ready, memory_order_relaxed)) {
                char key[KEY_MAX];
                size_t kn = (size_t)snprintf(key, sizeof key, "orr:alive:%s", cl->inst);
                const char *a[2] = {"DEL", key};
                size_t l[2] = {3, kn};
                plain(cl, 2, a, l);
                const char *b[3] = {"SREM", "orr:nodes", cl->inst};
                size_t bl[3] = {4, 9, cl->inst_len};
                plain(cl, 3, b, bl);
            }
        }
        if (stopping && (cl->outstanding == 0 || !cl->cmd_up || mono_ms() >= stop_deadline)) break;
        int n = epoll_wait(cl->epfd, evs, 64, TICK_MS);
        if (n < 0 && errno != EINTR) break;
        cl->now_ms = mono_ms();
        for (int i = 0; i < n; i++) {
            orr_loop_handler *h = evs[i].data.ptr;
            h->on_event(h, evs[i].events);
        }
    }
    return NULL;
}

orr_cluster *orr_cluster_start(orr_server *s) {
    orr_cluster *cl = orr_xcalloc(1, sizeof *cl);
    cl->srv = s;
    pthread_mutex_init(&cl->lock, NULL);
    const orr_cluster_config *cc = &s->cfg.cluster;
    char node[96];
    if (cc->node_id[0]) {
        snprintf(node, sizeof node, "%s", cc->node_id);
    } else {
        char host[64] = "node";
        gethostname(host, sizeof host - 1);
        snprintf(node, sizeof node, "%s:%u", host, s->port);
    }
    uint32_t boot = 0;
    getrandom(&boot, sizeof boot, 0);
    snprintf(cl->inst, sizeof cl->inst, "%s#%08x", node, boot);
    cl->inst_len = strlen(cl->inst);
    for (int i = 0; i < SC_N; i++) {
        unsigned char d[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)orr_cluster_scripts[i], strlen(orr_cluster_scripts[i]), d);
        for (int k = 0; k < SHA_DIGEST_LENGTH; k++) snprintf(cl->sha[i] + 2 * k, 3, "%02x", d[k]);
    }
    snprintf(cl->why, sizeof cl->why, "connecting to redis");
    cl->epfd = epoll_create1(EPOLL_CLOEXEC);
    cl->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    cl->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    cl->ev_h.on_event = on_event_fd;
    cl->timer_h.on_event = on_timer;
    struct epoll_event e1 = {.events = EPOLLIN, .data.ptr = &cl->ev_h};
    struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = &cl->timer_h};
    epoll_ctl(cl->epfd, EPOLL_CTL_ADD, cl->event_fd, &e1);
    epoll_ctl(cl->epfd, EPOLL_CTL_ADD, cl->timer_fd, &e2);
    struct itimerspec its = {.it_interval = {.tv_nsec = TICK_MS * 1000000L}, .it_value = {.tv_nsec = 1000000L}};
    timerfd_settime(cl->timer_fd, 0, &its, NULL);
    cl->now_ms = mono_ms();
    cl->cmd = orr_redis_new(cl->epfd, &cc->redis, "commands", on_state, cl);
    cl->sub = orr_redis_new(cl->epfd, &cc->redis, "subscriptions", on_state, cl);
    orr_log(ORR_LOG_INFO, NULL, "cluster: node %s (instance %s), redis %s", node, cl->inst, cc->redis_url);
    if (pthread_create(&cl->thread, NULL, cluster_main, cl) != 0) {
        orr_log(ORR_LOG_ERROR, NULL, "cluster: cannot start its thread");
        return NULL;
    }
    return cl;
}

void orr_cluster_stop(orr_cluster *cl) {
    if (!cl) return;
    atomic_store_explicit(&cl->stop, true, memory_order_release);
    uint64_t one = 1;
    ssize_t r = write(cl->event_fd, &one, sizeof one);
    (void)r;
    pthread_join(cl->thread, NULL);
    orr_redis_free(cl->cmd);
    orr_redis_free(cl->sub);
    orr_cl_req *rq = cl->head;
    while (rq) {
        orr_cl_req *next = rq->next;
        req_free(rq);
        rq = next;
    }
    if (cl->chans) {
        for (size_t i = 0; i <= cl->chan_mask; i++) {
            for (chan *c = cl->chans[i], *next; c; c = next) {
                next = c->next;
                for (orr_cl_req *w = c->waiting, *wn; w; w = wn) {
                    wn = w->next;
                    req_free(w);
                }
                free(c);
            }
        }
        free(cl->chans);
    }
    orr_idvec_free(&cl->scratch);
    close(cl->epfd);
    close(cl->event_fd);
    close(cl->timer_fd);
    pthread_mutex_destroy(&cl->lock);
    free(cl);
}

void orr_cluster_draining(orr_cluster *cl) {
    if (!cl) return;
    atomic_store_explicit(&cl->draining, true, memory_order_relaxed);
    uint64_t one = 1;
    ssize_t r = write(cl->event_fd, &one, sizeof one);
    (void)r;
}

void orr_cluster_post(orr_cluster *cl, orr_cl_req *rq) {
    rq->next = NULL;
    pthread_mutex_lock(&cl->lock);
    bool was_empty = cl->head == NULL;
    if (cl->tail)
        cl->tail->next = rq;
    else
        cl->head = rq;
    cl->tail = rq;
    pthread_mutex_unlock(&cl->lock);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t r = write(cl->event_fd, &one, sizeof one);
        (void)r;
    }
}

bool orr_cluster_ready(orr_cluster *cl, char *why, size_t whylen) {
    if (atomic_load_explicit(&cl->ready, memory_order_relaxed)) return true;
    pthread_mutex_lock(&cl->lock);
    snprintf(why, whylen, "%s", cl->why[0] ? cl->why : "redis not ready");
    pthread_mutex_unlock(&cl->lock);
    return false;
}

void orr_cluster_metrics(orr_cluster *cl, void (*emit)(void *arg, const char *line), void *arg) {
    char line[256];
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } counters[] = {
        {"orrery_cluster_messages_sent_total", "counter", "Messages this node sent to other nodes.",
         offsetof(orr_cluster, sent)},
        {"orrery_cluster_messages_received_total", "counter", "Messages other nodes sent to this node.",
         offsetof(orr_cluster, received)},
        {"orrery_cluster_send_failures_total", "counter", "Sends to other nodes that failed for lack of Redis.",
         offsetof(orr_cluster, send_failures)},
        {"orrery_cluster_reaped_nodes_total", "counter", "Dead nodes whose names and members this node removed.",
         offsetof(orr_cluster, reaped)},
        {"orrery_cluster_name_conflicts_total", "counter",
         "Connections closed because a newer registration of their name won after an outage.",
         offsetof(orr_cluster, conflicts)},
    };
    snprintf(line, sizeof line,
             "# HELP orrery_cluster_redis_up Whether this node reaches Redis (1) or not (0).\n"
             "# TYPE orrery_cluster_redis_up gauge\norrery_cluster_redis_up %d\n",
             atomic_load_explicit(&cl->ready, memory_order_relaxed) ? 1 : 0);
    emit(arg, line);
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        const atomic_uint_fast64_t *v = (const atomic_uint_fast64_t *)((const char *)cl + counters[i].off);
        snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", counters[i].name, counters[i].help,
                 counters[i].name, counters[i].type, counters[i].name,
                 (unsigned long long)atomic_load_explicit(v, memory_order_relaxed));
        emit(arg, line);
    }
}
