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
 * write (hiredis buffers them), the sends among them as one script call: a
 * burst of sends costs one round trip. What other nodes send this one waits
 * in its inbox stream until this node takes it (on_inbox).
 */
#include "cluster/cluster_internal.h"

#include "common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

void cl_set_why(orr_cluster *cl, const char *why) {
    pthread_mutex_lock(&cl->lock);
    snprintf(cl->why, sizeof cl->why, "%s", why);
    pthread_mutex_unlock(&cl->lock);
}

/* "<prefix><pool>\0<name>" */
size_t cl_pool_key(char *out, const char *prefix, const char *pool, size_t b, const char *name,
                   size_t len) {
    size_t a = strlen(prefix);
    memcpy(out, prefix, a);
    memcpy(out + a, pool, b);
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

static void flush_answers(orr_cluster *cl) {
    while (cl->ans_head && cl->ans_head->done) {
        cl_answer *a = cl->ans_head;
        cl->ans_head = a->next;
        if (!cl->ans_head) cl->ans_tail = NULL;
        a->r.name = a->name;
        /* Handed over at the end of this loop pass, one batch per worker. */
        if (a->reply_to) cl->dv->ops->complete(cl->dv, a->reply_to, &a->r);
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

static void answer(orr_cluster *cl, orr_cl_req *rq, orr_registry_op op, int status,
                   uint64_t count) {
    cl_answer *a = rq->ans;
    if (!a) return;
    rq->ans = NULL;
    a->r = (orr_registry_result){
        .op = op, .status = status, .count = count, .name_len = rq->name_len, .tag = rq->tag};
    memcpy(a->name, rq->name, rq->name_len);
    a->done = true;
    flush_answers(cl);
}

void cl_req_free(orr_cl_req *rq) {
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
static void on_park_reply(orr_cluster *cl, orr_cl_req *rq, const redisReply *a);
static uint64_t parse_conn(const char *p, size_t n);
static void hold(orr_cluster *cl, orr_cl_req *rq, long long w);
static void park_count(orr_cluster *cl, const char *pool, size_t pool_len, uint64_t delivered,
                       uint64_t expired, uint64_t dropped);

/* "EVALSHA <sha> <nkeys>" in argv[0..3); nk holds the number's text. */
static void eval_head(const orr_cluster *cl, int script, size_t nkeys, const char **argv,
                      size_t *argl, char nk[24]) {
    argv[0] = "EVALSHA";
    argl[0] = 7;
    argv[1] = cl->sha[script];
    argl[1] = 40;
    argl[2] = (size_t)snprintf(nk, 24, "%zu", nkeys);
    argv[2] = nk;
}

/* EVALSHA script with keys and args; the reply goes to on_reply with rq
 * (which may be NULL: nobody waits). */
int cl_eval(orr_cluster *cl, int script, orr_cl_req *rq, int nkeys, const char **kv,
            const size_t *kl, int nargs) {
    const char *argv[16];
    size_t argl[16];
    char nk[24];
    eval_head(cl, script, (size_t)nkeys, argv, argl, nk);
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

/* ---- requests ---- */

void cl_handle_down(orr_cluster *cl, orr_cl_req *rq) {
    switch (rq->kind) {
    case ORR_RQ_REGISTER:
        answer(cl, rq, ORR_OP_UNIQUE_REGISTER, ORR_OK, 0);
        break;
    case ORR_RQ_SEND:
        atomic_fetch_add_explicit(&cl->send_failures, 1, memory_order_relaxed);
        answer(cl, rq, ORR_OP_ROUTED_SEND, ORR_ENOTFOUND, 0);
        break;
    case ORR_RQ_JOIN:
        answer(cl, rq, ORR_OP_GROUP_JOIN, ORR_OK, 0);
        break;
    case ORR_RQ_PUBLISH:
        answer(cl, rq, ORR_OP_GROUP_PUBLISH, ORR_OK, rq->local_count);
        break;
    case ORR_RQ_ANSWER:
        answer(cl, rq, rq->op, rq->status, rq->count);
        break;
    case ORR_RQ_PARK: /* not parked: the 1001 goes anyway (today's behaviour) */
    case ORR_RQ_ORPHAN:
        atomic_fetch_add_explicit(&cl->park_failures, 1, memory_order_relaxed);
        answer(cl, rq, rq->op, ORR_OK, 0);
        break;
    default:
        if (rq->kind == ORR_RQ_GONE && rq->park.park_ms)
            atomic_fetch_add_explicit(&cl->park_failures, 1, memory_order_relaxed);
        answer(cl, rq, rq->op, rq->status, rq->count);
        break; /* rewritten from the local table on return */
    }
    cl_req_free(rq);
    flush_answers(cl);
}

/* REGISTER, UNREGISTER: the name's key, the connection's index (and the node's). */
static int eval_name(orr_cluster *cl, orr_cl_req *rq, const char *conn, size_t cn) {
    char k1[KEY_MAX], k2[KEY_MAX], k3[KEY_MAX], since[24];
    size_t l1 = cl_pool_key(k1, "orr:u:", rq->pool, rq->pool_len, rq->name, rq->name_len);
    size_t l2 = cl_conn_index_key(cl, k2, rq->conn);
    if (rq->kind == ORR_RQ_UNREGISTER) {
        const char *kv[4] = {k1, k2, cl->inst, conn};
        size_t kl[4] = {l1, l2, cl->inst_len, cn};
        return cl_eval(cl, SC_UNREGISTER, rq, 2, kv, kl, 2);
    }
    size_t sn = (size_t)snprintf(since, sizeof since, "%" PRId64, rq->since_ms);
    const char *kv[7] = {k1, k2, k3, cl->inst, conn, since, "0"};
    size_t kl[7] = {l1, l2, cl_node_index_key(cl, k3), cl->inst_len, cn, sn, 1};
    return cl_eval(cl, SC_REGISTER, rq, 3, kv, kl, 4);
}

/* JOIN, LEAVE: the group's members, the connection's index, the per-node counts. */
static int eval_group(orr_cluster *cl, orr_cl_req *rq, const char *conn, size_t cn) {
    char k1[KEY_MAX], k2[KEY_MAX], k3[KEY_MAX], k4[KEY_MAX];
    size_t l1 = cl_pool_key(k1, "orr:g:", rq->pool, rq->pool_len, rq->name, rq->name_len);
    size_t l2 = cl_conn_index_key(cl, k2, rq->conn);
    size_t l4 = cl_pool_key(k4, "orr:gn:", rq->pool, rq->pool_len, rq->name, rq->name_len);
    if (rq->kind == ORR_RQ_LEAVE) {
        const char *kv[5] = {k1, k2, k4, cl->inst, conn};
        size_t kl[5] = {l1, l2, l4, cl->inst_len, cn};
        return cl_eval(cl, SC_LEAVE, rq, 3, kv, kl, 2);
    }
    const char *kv[6] = {k1, k2, k3, k4, cl->inst, conn};
    size_t kl[6] = {l1, l2, cl_node_index_key(cl, k3), l4, cl->inst_len, cn};
    return cl_eval(cl, SC_JOIN, rq, 4, kv, kl, 2);
}

static int eval_publish(orr_cluster *cl, orr_cl_req *rq) {
    char k1[KEY_MAX], k2[KEY_MAX];
    size_t tlen = cl_pool_key(k2, "", rq->pool, rq->pool_len, rq->name, rq->name_len);
    const char *kv[5] = {k1, cl->inst, k2, rq->msg, cl->cap};
    size_t kl[5] = {cl_pool_key(k1, "orr:gn:", rq->pool, rq->pool_len, rq->name, rq->name_len),
                    cl->inst_len, tlen, rq->msg_len, cl->cap_len};
    return cl_eval(cl, SC_PUBLISH, rq, 1, kv, kl, 4);
}

/* GONE, PARK, ORPHAN: inst, conn, the pool's parking (park_ms 0: none), and
 * ORPHAN's message. */
static int eval_park(orr_cluster *cl, orr_cl_req *rq, const char *conn, size_t cn) {
    char pms[16], pn[16], pb[24], key[KEY_MAX];
    size_t keyl = rq->name_len
                      ? cl_pool_key(key, "orr:u:", rq->pool, rq->pool_len, rq->name, rq->name_len)
                      : 0;
    const char *kv[7] = {cl->inst, conn, pms, pn, pb, rq->msg, key};
    size_t kl[7] = {cl->inst_len,
                    cn,
                    (size_t)snprintf(pms, sizeof pms, "%" PRIu32, rq->park.park_ms),
                    (size_t)snprintf(pn, sizeof pn, "%" PRIu32, rq->park.max_messages),
                    (size_t)snprintf(pb, sizeof pb, "%" PRIu64, rq->park.max_bytes),
                    rq->msg_len,
                    keyl};
    int script = rq->kind == ORR_RQ_GONE ? SC_GONE : rq->kind == ORR_RQ_PARK ? SC_PARK : SC_ORPHAN;
    return cl_eval(cl, script, rq, 0, kv, kl, rq->kind == ORR_RQ_ORPHAN ? 7 : 5);
}

void cl_handle_req(orr_cluster *cl, orr_cl_req *rq) {
    answer_slot(cl, rq);
    if (rq->kind == ORR_RQ_ANSWER) { /* known on this node already */
        answer(cl, rq, rq->op, rq->status, rq->count);
        cl_req_free(rq);
        return;
    }
    if (!atomic_load_explicit(&cl->ready, memory_order_relaxed)) {
        cl_handle_down(cl, rq);
        return;
    }
    if (rq->kind == ORR_RQ_SEND) { /* goes out with the others of this pass */
        cl->batch[cl->n_batch++] = rq;
        if (cl->n_batch == SEND_BATCH) cl_flush_sends(cl);
        return;
    }
    if (cl->n_batch) cl_flush_sends(cl);
    char conn[24];
    size_t cn = (size_t)snprintf(conn, sizeof conn, "%" PRIu64, rq->conn);
    int rc = 0;
    if (rq->kind == ORR_RQ_REGISTER || rq->kind == ORR_RQ_UNREGISTER) {
        rc = eval_name(cl, rq, conn, cn);
    } else if (rq->kind == ORR_RQ_JOIN || rq->kind == ORR_RQ_LEAVE) {
        rc = eval_group(cl, rq, conn, cn);
    } else if (rq->kind == ORR_RQ_PUBLISH) {
        rc = eval_publish(cl, rq);
    } else if (rq->kind == ORR_RQ_GONE || rq->kind == ORR_RQ_PARK || rq->kind == ORR_RQ_ORPHAN) {
        rc = eval_park(cl, rq, conn, cn);
    }
    if (rc < 0) cl_handle_down(cl, rq);
}

/* ---- sends, in batches ---- */

typedef struct send_batch {
    orr_cluster *cl;
    size_t n;
    orr_cl_req *rq[];
} send_batch;

/* Parking's counters of rq's pool (metrics). */
static void park_count(orr_cluster *cl, const char *pool, size_t pool_len, uint64_t delivered,
                       uint64_t expired, uint64_t dropped) {
    if (!delivered && !expired && !dropped) return;
    orr_park_stats add = {.delivered = delivered, .expired = expired, .dropped = dropped};
    cl->dv->ops->park_count(cl->dv, pool, pool_len, &add, -1);
}

/* v: the script's answer (scripts.h SEND); 2 and more: parked (ORR_OK, count 0). */
static void answer_send(orr_cluster *cl, orr_cl_req *rq, bool ok, long long v) {
    if (!ok) atomic_fetch_add_explicit(&cl->send_failures, 1, memory_order_relaxed);
    if (v == 1) atomic_fetch_add_explicit(&cl->sent, 1, memory_order_relaxed);
    if (v < 0) atomic_fetch_add_explicit(&cl->inbox_full, 1, memory_order_relaxed);
    if (v >= 2) park_count(cl, rq->pool, rq->pool_len, 0, 0, (uint64_t)(v - 2));
    answer(cl, rq, ORR_OP_ROUTED_SEND, v > 0 ? ORR_OK : ORR_ENOTFOUND, v == 1);
    cl_req_free(rq);
}

static void on_send_reply(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    send_batch *b = priv;
    orr_cluster *cl = b->cl;
    cl->outstanding--;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        orr_log(ORR_LOG_ERROR, NULL, "cluster: redis: %.*s", (int)reply->len, reply->str);
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == b->n;
    for (size_t i = 0; i < b->n; i++) {
        const redisReply *e = ok ? reply->element[i] : NULL;
        if (e && e->type == REDIS_REPLY_STRING) { /* "<conn>:<w>": held on this node */
            orr_cl_req *rq = b->rq[i];
            const char *colon = memchr(e->str, ':', e->len);
            rq->deliver_to = colon ? parse_conn(e->str, (size_t)(colon - e->str)) : 0;
            if (!rq->deliver_to) {
                answer_send(cl, rq, false, 0);
                continue;
            }
            /* After what its node's inbox had by then (the kept messages of a
             * name just taken here, for one). */
            hold(cl, rq, strtoll(colon + 1, NULL, 10));
            continue;
        }
        bool one = e && e->type == REDIS_REPLY_INTEGER;
        answer_send(cl, b->rq[i], one, one ? e->integer : 0);
    }
    free(b);
    flush_answers(cl);
}

void cl_flush_sends(orr_cluster *cl) {
    size_t n = cl->n_batch;
    if (!n) return;
    cl->n_batch = 0;
    size_t argc = 3 + n + 2 + n;
    const char **argv = cl->batch_argv;
    size_t *argl = cl->batch_argl;
    char nk[24];
    eval_head(cl, SC_SEND, n, argv, argl, nk);
    argv[3 + n] = cl->cap;
    argl[3 + n] = cl->cap_len;
    argv[4 + n] = cl->inst;
    argl[4 + n] = cl->inst_len;
    send_batch *b = orr_xmalloc(sizeof *b + n * sizeof b->rq[0]);
    b->cl = cl;
    b->n = n;
    for (size_t i = 0; i < n; i++) {
        orr_cl_req *rq = cl->batch[i];
        b->rq[i] = rq;
        argv[3 + i] = cl->batch_keys[i];
        argl[3 + i] = cl_pool_key(cl->batch_keys[i], "orr:u:", rq->pool, rq->pool_len, rq->name,
                                  rq->name_len);
        argv[5 + n + i] = rq->msg;
        argl[5 + n + i] = rq->msg_len;
    }
    int rc = orr_redis_command(cl->cmd, on_send_reply, b, (int)argc, argv, argl);
    if (rc == 0) {
        cl->outstanding++;
        return;
    }
    for (size_t i = 0; i < n; i++)
        cl_handle_down(cl, b->rq[i]);
    free(b);
}

/* ---- parking's answers ---- */

static long long int_at(const redisReply *a, size_t i) {
    return i < a->elements && a->element[i]->type == REDIS_REPLY_INTEGER ? a->element[i]->integer
                                                                         : 0;
}

/* rq's answer waits until this node has taken its inbox up to count w: what
 * was queued there before (for the parked connection; the kept messages of
 * a name just taken) reaches the workers first. */
static void hold(orr_cluster *cl, orr_cl_req *rq, long long w) {
    rq->wait_w = w > 0 ? (uint64_t)w : 0;
    rq->wait_until = cl->loop.now_ms + cl->close_timeout_ms;
    rq->held_next = NULL;
    if (cl->held_tail)
        cl->held_tail->held_next = rq;
    else
        cl->held = rq;
    cl->held_tail = rq;
    cl_release_held(cl, false);
}

/* A send whose holder is on this node, handed over by this thread (scripts.h
 * SEND): in the order of everything else it hands to the workers. */
static void deliver_here(orr_cluster *cl, orr_cl_req *rq) {
    bool in = cl->dv->ops->to_conn(cl->dv, rq->deliver_to, rq->msg, rq->msg_len) == 0;
    answer(cl, rq, ORR_OP_ROUTED_SEND, in ? ORR_OK : ORR_ENOTFOUND, in);
}

/* In order: one that waits holds those after it (a send held behind the
 * inbox must not be overtaken by a later one). */
void cl_release_held(orr_cluster *cl, bool all) {
    uint64_t taken = strtoull(cl->taken_w, NULL, 10);
    while (cl->held) {
        orr_cl_req *rq = cl->held;
        if (!all && taken < rq->wait_w && cl->loop.now_ms < rq->wait_until) break;
        cl->held = rq->held_next;
        if (!cl->held) cl->held_tail = NULL;
        if (rq->deliver_to)
            deliver_here(cl, rq);
        else
            answer(cl, rq, rq->op, rq->status, rq->count);
        cl_req_free(rq);
    }
    flush_answers(cl);
}

/* The array answers: REGISTER of a parked name {1, moved, expired, w}; PARK
 * {parked, w}; ORPHAN {kept/handed on/lost, dropped, pool}. */
static void on_park_reply(orr_cluster *cl, orr_cl_req *rq, const redisReply *a) {
    if (rq->kind == ORR_RQ_REGISTER) {
        long long moved = int_at(a, 1);
        park_count(cl, rq->pool, rq->pool_len, (uint64_t)moved, (uint64_t)int_at(a, 2), 0);
        rq->op = ORR_OP_UNIQUE_REGISTER;
        rq->status = ORR_OK;
        rq->count = 0;
        if (moved > 0) {
            hold(cl, rq, int_at(a, 3));
            return;
        }
        answer(cl, rq, rq->op, rq->status, rq->count);
    } else if (rq->kind == ORR_RQ_PARK) {
        rq->status = ORR_OK;
        hold(cl, rq, int_at(a, 1));
        return;
    } else if (rq->kind == ORR_RQ_ORPHAN) {
        long long what = int_at(a, 0), dropped = int_at(a, 1);
        const redisReply *pool = a->elements > 2 ? a->element[2] : NULL;
        if (pool && pool->type == REDIS_REPLY_STRING && pool->len < ORR_POOL_NAME_MAX)
            park_count(cl, pool->str, pool->len, 0, 0, (uint64_t)dropped + (what == 0));
    }
    cl_req_free(rq);
    flush_answers(cl);
}

/* ---- the sweep ---- */

static void on_sweep_reply(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    orr_cluster *cl = priv;
    cl->outstanding--;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) return;
    const redisReply *out = reply->element[0], *h = reply->element[1];
    for (size_t i = 0; out->type == REDIS_REPLY_ARRAY && i + 1 < out->elements; i += 2) {
        const redisReply *p = out->element[i], *n = out->element[i + 1];
        if (p->type == REDIS_REPLY_STRING && n->type == REDIS_REPLY_INTEGER && n->integer > 0)
            park_count(cl, p->str, p->len, 0, (uint64_t)n->integer, 0);
    }
    /* A full batch: more may be due (10,000 names parked at once expire at once). */
    if (out->type == REDIS_REPLY_ARRAY && out->elements >= 2 * SWEEP_BATCH) cl_sweep(cl);
    if (h->type != REDIS_REPLY_ARRAY) return;
    /* The gauge: every pool with parked names now, and 0 for the ones that had some. */
    orr_park_stats none = {0};
    size_t n_new = 0;
    char(*now)[ORR_POOL_NAME_MAX] = orr_xcalloc(h->elements / 2 + 1, sizeof *now);
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *p = h->element[i], *v = h->element[i + 1];
        if (p->type != REDIS_REPLY_STRING || p->len >= ORR_POOL_NAME_MAX) continue;
        long long k = v->type == REDIS_REPLY_STRING ? strtoll(v->str, NULL, 10) : 0;
        cl->dv->ops->park_count(cl->dv, p->str, p->len, &none, k > 0 ? k : 0);
        memcpy(now[n_new++], p->str, p->len);
    }
    for (size_t i = 0; i < cl->n_park_pools; i++) {
        bool still = false;
        for (size_t j = 0; j < n_new && !still; j++)
            still = strcmp(cl->park_pools[i], now[j]) == 0;
        if (!still)
            cl->dv->ops->park_count(cl->dv, cl->park_pools[i], strlen(cl->park_pools[i]), &none, 0);
    }
    free(cl->park_pools);
    cl->park_pools = now;
    cl->n_park_pools = n_new;
}

void cl_sweep(orr_cluster *cl) {
    char n[16];
    const char *argv[4] = {"EVALSHA", cl->sha[SC_SWEEP], "0", n};
    size_t argl[4] = {7, 40, 1, (size_t)snprintf(n, sizeof n, "%d", SWEEP_BATCH)};
    if (orr_redis_command(cl->cmd, on_sweep_reply, cl, 4, argv, argl) == 0) cl->outstanding++;
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
    if (reply && reply->type == REDIS_REPLY_ARRAY) {
        on_park_reply(cl, rq, reply);
        return;
    }
    bool ok = reply && reply->type == REDIS_REPLY_INTEGER;
    long long v = ok ? reply->integer : 0;
    if (rq->kind == ORR_RQ_PARK || rq->kind == ORR_RQ_ORPHAN) { /* lost on the way */
        cl_handle_down(cl, rq);
        return;
    }
    switch (rq->kind) {
    case ORR_RQ_REGISTER:
        /* Lost on the way: it stands locally and is written back. */
        answer(cl, rq, ORR_OP_UNIQUE_REGISTER, !ok || v == 1 ? ORR_OK : ORR_ETAKEN, 0);
        break;
    case ORR_RQ_JOIN:
        answer(cl, rq, ORR_OP_GROUP_JOIN, ORR_OK, 0);
        break;
    case ORR_RQ_LEAVE:
    case ORR_RQ_UNREGISTER:
        /* Answered once Redis applied it: a publication after the answer
         * no longer counts it. */
        answer(cl, rq, rq->op, rq->status, rq->count);
        break;
    case ORR_RQ_PUBLISH: {
        /* The members reached on the other nodes, as Redis knows them. */
        if (ok && v > 0) atomic_fetch_add_explicit(&cl->sent, 1, memory_order_relaxed);
        answer(cl, rq, ORR_OP_GROUP_PUBLISH, ORR_OK,
               rq->local_count + (ok && v > 0 ? (uint64_t)v : 0));
        break;
    }
    default:
        break;
    }
    cl_req_free(rq);
    flush_answers(cl);
}

/* ---- what other nodes send us: this node's inbox, a Redis stream ---- */

static uint64_t parse_conn(const char *p, size_t n) {
    uint64_t v = 0;
    if (n == 0 || n > 20) return 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    return v;
}

/* One field of an entry and its value: "<conn>" and a message (to a name's
 * holder), "G<pool>\0<group>" and a message (a publication for this node's
 * members), "K<conn>" (close it: a newer registration took its name).
 * Deliveries are chained per worker and handed over at the end of the loop
 * pass. ORR_EAGAIN: the worker's mailbox is full; it is read again later. */
static int take_one(orr_cluster *cl, const redisReply *k, const redisReply *d) {
    if (k->type != REDIS_REPLY_STRING || d->type != REDIS_REPLY_STRING || k->len == 0) return 0;
    if (k->str[0] == 'G') {
        const char *t = k->str + 1;
        size_t tlen = k->len - 1;
        const char *z = memchr(t, '\0', tlen);
        if (!z) return 0;
        size_t plen = (size_t)(z - t);
        if (orr_pool_name_check(t, plen) != 0) return 0;
        if (cl->dv->ops->to_group(cl->dv, t, plen, z + 1, tlen - plen - 1, d->str, d->len))
            atomic_fetch_add_explicit(&cl->received, 1, memory_order_relaxed);
        return 0;
    }
    bool kill = k->str[0] == 'K';
    uint64_t conn = kill ? parse_conn(k->str + 1, k->len - 1) : parse_conn(k->str, k->len);
    if (!conn) return 0;
    if (kill) {
        atomic_fetch_add_explicit(&cl->conflicts, 1, memory_order_relaxed);
        cl->dv->ops->evict(cl->dv, conn);
        return 0;
    }
    int rc = cl->dv->ops->to_conn(cl->dv, conn, d->str, d->len);
    if (rc == ORR_EAGAIN) return ORR_EAGAIN;
    if (rc == 0) atomic_fetch_add_explicit(&cl->received, 1, memory_order_relaxed);
    return 0;
}

/* An entry: "n" and the inbox's count of messages written so far, then
 * field/value pairs (take_one). Pairs before `skip` were taken already (an
 * earlier pass stopped inside it). ORR_EAGAIN with *done: the pairs taken. */
static int take_entry(orr_cluster *cl, const redisReply *f, size_t skip, size_t *done) {
    *done = 0;
    if (f->type != REDIS_REPLY_ARRAY || f->elements < 2 || f->elements % 2) return 0;
    size_t pairs = f->elements / 2 - 1;
    for (size_t i = skip; i < pairs; i++) {
        if (take_one(cl, f->element[2 + 2 * i], f->element[3 + 2 * i]) == ORR_EAGAIN) {
            *done = i;
            return ORR_EAGAIN;
        }
    }
    return 0;
}

static void on_inbox(orr_redis *r, redisReply *reply, void *priv);

void cl_read_inbox(orr_cluster *cl) {
    if (cl->reading || cl->inbox_wait || !cl->sub_up) return;
    const char *argv[8] = {"XREAD", "COUNT", "1024", "BLOCK", "0", "STREAMS", cl->box, cl->last_id};
    size_t argl[8] = {5, 5, 4, 5, 1, 7, cl->box_len, strlen(cl->last_id)};
    if (orr_redis_command(cl->sub, on_inbox, cl, 8, argv, argl) == 0) cl->reading = true;
}

/* A batch of entries (XREAD answers once there is at least one): taken in
 * order, the last one's id remembered, and the next read sent at once. The
 * entries stay in Redis until trimmed (on_timer), so a reply lost with the
 * connection is read again after it returns. */
static void on_inbox(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    orr_cluster *cl = priv;
    cl->reading = false;
    if (!reply) return; /* the connection was lost: read again once it is up */
    if (reply->type == REDIS_REPLY_ERROR) {
        orr_log(ORR_LOG_ERROR, NULL, "cluster: redis: reading the inbox: %.*s", (int)reply->len,
                reply->str);
        cl->inbox_wait = true; /* again at the next tick */
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2 &&
        reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *es = reply->element[0]->element[1];
        for (size_t i = 0; i < es->elements; i++) {
            const redisReply *e = es->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING ||
                e->element[0]->len >= sizeof cl->last_id)
                continue;
            size_t skip = i == 0 ? cl->skip : 0, done;
            if (take_entry(cl, e->element[1], skip, &done) == ORR_EAGAIN) {
                /* A worker is far behind: leave the rest in Redis (senders
                 * are refused once the inbox holds its cap). */
                cl->skip = done;
                if (!cl->inbox_wait)
                    orr_log(ORR_LOG_WARN, NULL,
                            "cluster: %s: a worker's mailbox is full: inbox reading waits",
                            cl->inst);
                cl->inbox_wait = true;
                atomic_fetch_add_explicit(&cl->inbox_waits, 1, memory_order_relaxed);
                break;
            }
            cl->skip = 0;
            memcpy(cl->last_id, e->element[0]->str, e->element[0]->len);
            cl->last_id[e->element[0]->len] = '\0';
            const redisReply *f = e->element[1];
            if (f->type == REDIS_REPLY_ARRAY && f->elements >= 2 &&
                f->element[1]->type == REDIS_REPLY_STRING &&
                f->element[1]->len < sizeof cl->taken_w) {
                memcpy(cl->taken_w, f->element[1]->str, f->element[1]->len);
                cl->taken_w[f->element[1]->len] = '\0';
            }
            cl->trim_due = true;
            cl->box_seen = true;
        }
    }
    if (cl->held) cl_release_held(cl, false);
    cl_read_inbox(cl);
}
