/*
 * The cluster thread's life: its loop and mailbox, the three Redis
 * connections coming and going, writing this node's part back after they
 * return, liveness, the reaper, and the public functions of cluster.h.
 *
 * While Redis cannot be reached: members on this node keep getting
 * publications, and names on this node keep working as long as the lease
 * lasts (node_ttl_ms from the last heartbeat Redis answered); a send to a
 * name held elsewhere answers not delivered (and is counted); registrations
 * and joins succeed locally and are written back when Redis returns, after
 * this node's old entries are cleared. A lease that lapsed while Redis was
 * reachable (a pause) is repaired the same way: see "the lease" below.
 */
#include "cluster/cluster_internal.h"

#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* ---- writing this node's part back, after (re)connecting ---- */

typedef struct writeback {
    orr_cluster *cl;
    size_t names, members;
} writeback;

/* A name lost to a newer registration elsewhere is closed (1008) through
 * this node's own inbox, after what was queued there for it (scripts.h). */
static void on_writeback_reply(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    orr_cluster *cl = priv;
    cl->outstanding--;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        orr_log(ORR_LOG_ERROR, NULL, "cluster: redis: %.*s", (int)reply->len, reply->str);
}

/* The keys one entry's write-back names: the name's or group's key, the
 * connection's index, the node's index, and the connection id as text. */
typedef struct wb_keys {
    char key[KEY_MAX], ci[KEY_MAX], ni[KEY_MAX], cs[24];
    size_t keyl, cil, nil, csl;
} wb_keys;

/* A name as a registration this node kept through an outage (confirmed:
 * the newer of two wins), or, for a claim Redis has not answered yet, under
 * the ordinary rule (a live holder keeps it): the claim's own REGISTER
 * answers its gear, and must not be outrun by a write-back that closes the
 * holder for a claim then refused. */
static void write_name(orr_cluster *cl, const orr_registry_entry *e, const wb_keys *k) {
    char ss[24];
    size_t ssl = (size_t)snprintf(ss, sizeof ss, "%" PRId64, e->since_ms);
    /* REGISTER: 3 keys; inst, conn, since, writeback */
    const char *argv[10] = {
        "EVALSHA", cl->sha[SC_REGISTER],  "3", k->key, k->ci, k->ni, cl->inst, k->cs,
        ss,        e->pending ? "0" : "1"};
    size_t argl[10] = {7, 40, 1, k->keyl, k->cil, k->nil, cl->inst_len, k->csl, ssl, 1};
    if (orr_redis_command(cl->cmd, on_writeback_reply, cl, 10, argv, argl) == 0) cl->outstanding++;
}

static void write_membership(orr_cluster *cl, const char *pool, size_t pl,
                             const orr_registry_entry *e, const wb_keys *k) {
    char gn[KEY_MAX];
    size_t gnl = cl_pool_key(gn, "orr:gn:", pool, pl, e->bytes, e->len);
    /* JOIN: 4 keys; inst, conn */
    const char *argv[9] = {"EVALSHA", cl->sha[SC_JOIN], "4",  k->key, k->ci, k->ni,
                           gn,        cl->inst,         k->cs};
    size_t argl[9] = {7, 40, 1, k->keyl, k->cil, k->nil, gnl, cl->inst_len, k->csl};
    if (orr_redis_command(cl->cmd, on_writeback_reply, cl, 9, argv, argl) == 0) cl->outstanding++;
}

static void write_one(void *arg, const orr_registry_entry *e) {
    writeback *wb = arg;
    orr_cluster *cl = wb->cl;
    /* Seen under the registry lock: its connection keeps the pool. */
    char pool[ORR_POOL_NAME_MAX];
    size_t pl = cl->dv->ops->pool_name(cl->dv, e->pool, pool, sizeof pool);
    if (!pl) return;
    wb_keys k;
    k.keyl = cl_pool_key(k.key, e->is_group ? "orr:g:" : "orr:u:", pool, pl, e->bytes, e->len);
    k.cil = cl_conn_index_key(cl, k.ci, e->conn);
    k.nil = cl_node_index_key(cl, k.ni);
    k.csl = (size_t)snprintf(k.cs, sizeof k.cs, "%" PRIu64, e->conn);
    if (e->is_group) {
        wb->members++;
        write_membership(cl, pool, pl, e, &k);
    } else {
        wb->names++;
        write_name(cl, e, &k);
    }
}

static void write_back(orr_cluster *cl) {
    /* Clear this instance's entries (a CLIENT KILL or a partition kept
     * them; a restarted Redis has none), then write the local table back. */
    const char *kv[2] = {cl->inst, "1"};
    size_t kl[2] = {cl->inst_len, 1};
    cl_eval(cl, SC_REAP, NULL, 0, kv, kl, 2);
    writeback wb = {.cl = cl};
    orr_registry_foreach(cl->base.reg, write_one, &wb);
    orr_log(ORR_LOG_INFO, NULL, "cluster: %s: wrote back %zu names and %zu memberships", cl->inst,
            wb.names, wb.members);
}

/* ---- liveness and the reaper ---- */

static void on_reap_reply(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    orr_cluster *cl = priv;
    cl->outstanding--;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        atomic_fetch_add_explicit(&cl->reaped, (uint64_t)reply->integer, memory_order_relaxed);
        orr_log(ORR_LOG_INFO, NULL, "cluster: reaped %lld node(s) whose liveness expired",
                reply->integer);
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

/* ---- the lease ---- */

typedef struct beat {
    orr_cluster *cl;
    int64_t
        sent_ms; /* monotonic: the key set by this heartbeat lasts node_ttl_ms from about then */
} beat;

static void lapse(orr_cluster *cl, const char *why) {
    if (cl->lapsed) return;
    cl->lapsed = true;
    atomic_store_explicit(&cl->lease_until, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&cl->lapses, 1, memory_order_relaxed);
    orr_log(
        ORR_LOG_WARN, NULL,
        "cluster: %s: lease lapsed (%s): its names go through Redis until they are written back",
        cl->inst, why);
}

/* The write-back after a lapse is done (replies come in order): the names
 * held here are this node's again, as far as Redis knows. */
static void on_restored(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    beat *b = priv;
    orr_cluster *cl = b->cl;
    cl->outstanding--;
    cl->restoring = false;
    if (reply && reply->type != REDIS_REPLY_ERROR && cl->lapsed) {
        cl->lapsed = false;
        atomic_store_explicit(&cl->lease_until, b->sent_ms + cl->node_ttl_ms, memory_order_relaxed);
        atomic_fetch_add_explicit(&cl->restores, 1, memory_order_relaxed);
        orr_log(ORR_LOG_INFO, NULL,
                "cluster: %s: lease restored: names and memberships written back", cl->inst);
    }
    free(b);
}

static void write_back(orr_cluster *cl);

static void on_beat_reply(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    beat *b = priv;
    orr_cluster *cl = b->cl;
    cl->outstanding--;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        if (reply)
            orr_log(ORR_LOG_ERROR, NULL, "cluster: redis: %.*s", (int)reply->len, reply->str);
        free(b);
        return;
    }
    /* SET ... GET answers the previous value: none means the key had
     * expired, and other nodes may have reaped our names meanwhile. */
    if (reply->type == REDIS_REPLY_NIL && cl->lease_held)
        lapse(cl, "its liveness key had expired in Redis");
    cl->lease_held = true;
    if (!cl->lapsed) {
        atomic_store_explicit(&cl->lease_until, b->sent_ms + cl->node_ttl_ms, memory_order_relaxed);
        free(b);
        return;
    }
    if (cl->restoring) {
        free(b);
        return;
    }
    /* Redis answers again: write our part back, as after a restart (the
     * newer of two registrations wins), then take the lease back. */
    cl->restoring = true;
    write_back(cl);
    const char *argv[1] = {"PING"};
    size_t argl[1] = {4};
    if (orr_redis_command(cl->cmd, on_restored, b, 1, argv, argl) == 0)
        cl->outstanding++;
    else {
        cl->restoring = false;
        free(b);
    }
}

/* The lease (backend.h holder_valid): workers read it for every send to a
 * name held on this node. */
static bool cl_holder_valid(orr_backend *b, int64_t now_ms) {
    orr_cluster *cl = (orr_cluster *)b;
    return now_ms < atomic_load_explicit(&cl->lease_until, memory_order_relaxed);
}

/* How long the inbox outlives this node's last heartbeat. */
static uint64_t inbox_keep_ms(const orr_cluster *cl) {
    uint64_t k = 10 * (uint64_t)cl->node_ttl_ms;
    return k < 60000 ? 60000 : k;
}

/* PEXPIRE answers 0 when the inbox is gone although entries were read from
 * it: Redis restarted (without them), or this node was silent longer than
 * the inbox is kept. Whatever waited there is lost. */
static void on_keep_reply(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    orr_cluster *cl = priv;
    cl->outstanding--;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0 && cl->box_seen) {
        cl->box_seen = false;
        atomic_fetch_add_explicit(&cl->inbox_lost, 1, memory_order_relaxed);
        orr_log(
            ORR_LOG_WARN, NULL,
            "cluster: %s: its inbox was gone from Redis (restarted, or this node silent too long): "
            "messages queued for it may be lost",
            cl->inst);
    }
}

static void heartbeat(orr_cluster *cl) {
    char key[KEY_MAX], ttl[24];
    size_t kn = (size_t)snprintf(key, sizeof key, "orr:alive:%s", cl->inst);
    size_t tn = (size_t)snprintf(ttl, sizeof ttl, "%u", cl->node_ttl_ms);
    const char *a1[6] = {"SET", key, "1", "PX", ttl, "GET"};
    size_t l1[6] = {3, kn, 1, 2, tn, 3};
    beat *b = orr_xmalloc(sizeof *b);
    b->cl = cl;
    b->sent_ms = orr_mono_ms();
    if (orr_redis_command(cl->cmd, on_beat_reply, b, 6, a1, l1) == 0)
        cl->outstanding++;
    else
        free(b);
    const char *a2[3] = {"SADD", "orr:nodes", cl->inst};
    size_t l2[3] = {4, 9, cl->inst_len};
    plain(cl, 3, a2, l2);
    /* The inbox outlives a silence of this node (a pause, a cut) by far
     * more than its liveness does, so what was queued for it waits. */
    char keep[24];
    size_t kpn = (size_t)snprintf(keep, sizeof keep, "%" PRIu64, inbox_keep_ms(cl));
    const char *a3[3] = {"PEXPIRE", cl->box, keep};
    size_t l3[3] = {7, cl->box_len, kpn};
    if (orr_redis_command(cl->cmd, on_keep_reply, cl, 3, a3, l3) == 0) cl->outstanding++;
    const char *a4[3] = {"PEXPIRE", cl->ib, keep};
    size_t l4[3] = {7, cl->ib_len, kpn};
    plain(cl, 3, a4, l4);
}

static void mark_draining(orr_cluster *cl) {
    char key[KEY_MAX], ttl[24];
    size_t kn = (size_t)snprintf(key, sizeof key, "orr:draining:%s", cl->inst);
    size_t tn = (size_t)snprintf(ttl, sizeof ttl, "%u",
                                 cl->node_ttl_ms + cl->drain_ms + cl->close_timeout_ms);
    const char *a[5] = {"SET", key, "1", "PX", ttl};
    size_t l[5] = {3, kn, 1, 2, tn};
    plain(cl, 5, a, l);
    cl->drain_marked = true;
}

static void reap(orr_cluster *cl) {
    const char *argv[5] = {"EVALSHA", cl->sha[SC_REAP], "0", cl->inst, "0"};
    size_t argl[5] = {7, 40, 1, cl->inst_len, 1};
    if (orr_redis_command(cl->cmd, on_reap_reply, cl, 5, argv, argl) == 0) cl->outstanding++;
    cl_sweep(cl);
}

/* ---- connection state ---- */

static void load_scripts(orr_cluster *cl) {
    for (int i = 0; i < SC_N; i++) {
        const char *argv[3] = {"SCRIPT", "LOAD", orr_cluster_scripts[i]};
        size_t argl[3] = {6, 4, strlen(orr_cluster_scripts[i])};
        plain(cl, 3, argv, argl);
    }
}

void cl_check_ready(orr_cluster *cl) {
    bool ready = cl->cmd_up && cl->sub_up && cl->present;
    if (ready == atomic_load_explicit(&cl->ready, memory_order_relaxed)) return;
    if (ready) {
        /* Liveness first, so that our write-back is not taken for a dead
         * node's entries. The write-back that follows repairs whatever an
         * outage cost, so the lease holds from this heartbeat's answer. */
        cl->lease_held = false;
        cl->lapsed = false;
        heartbeat(cl);
        atomic_store_explicit(&cl->ready, true, memory_order_relaxed);
        write_back(cl);
        cl->next_beat = cl->loop.now_ms + cl->heartbeat_ms;
        cl_set_why(cl, "");
        orr_log(ORR_LOG_INFO, NULL, "cluster: %s: ready", cl->inst);
    } else {
        atomic_store_explicit(&cl->ready, false, memory_order_relaxed);
    }
}

/* Not refreshed within node_ttl_ms by our own clock (this node paused, or
 * Redis paused or out of reach): our names may be reaped any moment. */
static void check_lease(orr_cluster *cl) {
    if (!cl->lease_held || cl->lapsed) return;
    if (cl->loop.now_ms >= atomic_load_explicit(&cl->lease_until, memory_order_relaxed))
        lapse(cl, "not refreshed within node_ttl_ms");
}

/* Senders check this node's presence subscription (scripts.h, live()):
 * ready once Redis confirms it. Nothing is ever published to it. */
static void on_presence(orr_redis *r, redisReply *reply, void *priv) {
    (void)r;
    orr_cluster *cl = priv;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) return;
    const redisReply *kind = reply->element[0];
    if (kind->type == REDIS_REPLY_STRING && kind->len == 9 &&
        memcmp(kind->str, "subscribe", 9) == 0) {
        cl->present = true;
        cl_check_ready(cl);
    }
}

static void on_state(orr_redis *r, int up, const char *why, void *priv) {
    orr_cluster *cl = priv;
    if (r == cl->cmd) {
        cl->cmd_up = up;
        if (up) load_scripts(cl);
    } else if (r == cl->sub) {
        cl->sub_up = up;
        if (up) cl_read_inbox(cl); /* from the last id taken: nothing in between is missed */
    } else {
        cl->present = false;
        if (up) {
            char ch[KEY_MAX];
            size_t n = (size_t)snprintf(ch, sizeof ch, "orr:up:%s", cl->inst);
            const char *argv[2] = {"SUBSCRIBE", ch};
            size_t argl[2] = {9, n};
            orr_redis_command(cl->pres, on_presence, cl, 2, argv, argl);
        }
    }
    if (!up) {
        char buf[160];
        snprintf(buf, sizeof buf, "redis unreachable: %s", why && *why ? why : "connection lost");
        cl_set_why(cl, buf);
        if (atomic_load_explicit(&cl->ready, memory_order_relaxed))
            orr_log(ORR_LOG_WARN, NULL, "cluster: %s: %s", cl->inst, buf);
    }
    cl_check_ready(cl);
}

/* ---- the thread ---- */

/* The mailbox's one item type: a request from a worker. */
static orr_xq_link *run_req(orr_xq_link *l, void *ctx) {
    orr_xq_link *next = l->next;
    cl_handle_req(ctx, ORR_CONTAINER_OF(l, orr_cl_req, link));
    return next;
}

static void drop_req(orr_xq_link *l) {
    cl_req_free(ORR_CONTAINER_OF(l, orr_cl_req, link));
}

static const orr_xq_type req_type = {run_req, drop_req};

static void take_mailbox(orr_cluster *cl) {
    orr_xq_run(orr_xq_take(&cl->loop.inbox), cl);
    cl_flush_sends(cl);
}

static void mark_draining(orr_cluster *cl);

static void on_mailbox(orr_loop *l) {
    orr_cluster *cl = ORR_CONTAINER_OF(l, orr_cluster, loop);
    /* Marked before the drain's closes are handled: a client that comes
     * back elsewhere finds its name free. */
    if (atomic_load_explicit(&cl->draining, memory_order_relaxed) && !cl->drain_marked &&
        atomic_load_explicit(&cl->ready, memory_order_relaxed))
        mark_draining(cl);
    take_mailbox(cl);
}

static void on_tick(orr_loop *loop) {
    orr_cluster *cl = ORR_CONTAINER_OF(loop, orr_cluster, loop);
    orr_redis_tick(cl->cmd, cl->loop.now_ms);
    orr_redis_tick(cl->sub, cl->loop.now_ms);
    orr_redis_tick(cl->pres, cl->loop.now_ms);
    check_lease(cl);
    if (cl->held) cl_release_held(cl, false);
    if (!atomic_load_explicit(&cl->ready, memory_order_relaxed)) return;
    if (cl->loop.now_ms >= cl->next_beat) {
        heartbeat(cl);
        cl->next_beat = cl->loop.now_ms + cl->heartbeat_ms;
    }
    if (cl->loop.now_ms >= cl->next_reap) {
        reap(cl);
        uint32_t hb = cl->heartbeat_ms;
        uint32_t jitter = 0;
        getrandom(&jitter, sizeof jitter, GRND_NONBLOCK);
        cl->next_reap = cl->loop.now_ms + hb + (hb ? jitter % hb : 0);
    }
    if (cl->inbox_wait) {
        cl->inbox_wait = false;
        cl_read_inbox(cl);
    }
    if (cl->trim_due) {
        /* What was taken goes (the last entry taken stays: an inbox never
         * vanishes while this node lives, see on_keep_reply). */
        cl->trim_due = false;
        const char *a[4] = {"XTRIM", cl->box, "MINID", cl->last_id};
        size_t l[4] = {5, cl->box_len, 5, strlen(cl->last_id)};
        plain(cl, 4, a, l);
        /* Senders count what waits as written - taken (scripts.h). */
        if (cl->taken_w[0]) {
            const char *b[4] = {"HSET", cl->ib, "r", cl->taken_w};
            size_t bl[4] = {4, cl->ib_len, 1, strlen(cl->taken_w)};
            plain(cl, 4, b, bl);
        }
    }
    if (atomic_load_explicit(&cl->draining, memory_order_relaxed) && !cl->drain_marked)
        mark_draining(cl);
}

static void *cluster_main(void *arg) {
    orr_cluster *cl = arg;
    int64_t stop_deadline = 0;
    for (;;) {
        bool stopping = atomic_load_explicit(&cl->stop, memory_order_acquire);
        if (stopping && !stop_deadline) {
            stop_deadline = orr_mono_ms() + 2000;
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
                const char *c[3] = {"DEL", cl->box, cl->ib};
                size_t cl2[3] = {3, cl->box_len, cl->ib_len};
                plain(cl, 3, c, cl2);
            }
        }
        if (stopping && (cl->outstanding == 0 || !cl->cmd_up || orr_mono_ms() >= stop_deadline))
            break;
        /* The Redis connections' events go to their handlers. */
        if (orr_loop_pass(&cl->loop, TICK_MS) < 0) break;
        cl_flush_posts(cl);
    }
    cl_flush_posts(cl);
    return NULL;
}

static void cl_stop(orr_backend *b);
static void cl_draining(orr_backend *b);
static int cl_submit(orr_backend *b, const orr_reg_req *rq);
static bool cl_ready(orr_backend *b, char *why, size_t whylen);
static void cl_metrics(orr_backend *b, void (*emit)(void *arg, const char *line), void *arg);

static int cl_take_name(orr_backend *b, uint32_t pool, const char *name, size_t len,
                        uint64_t conn) {
    return orr_registry_claim(b->reg, pool, name, len, conn);
}

static const orr_backend_ops cluster_ops = {
    .name = "cluster",
    .parks_shared = true,
    .take_name = cl_take_name,
    .submit = cl_submit,
    .holder_valid = cl_holder_valid,
    .ready = cl_ready,
    .metrics = cl_metrics,
    .draining = cl_draining,
    .stop = cl_stop,
};

/* <node>#<boot>: this incarnation of the node. */
static void name_instance(orr_cluster *cl, const orr_cluster_config *cc, uint16_t port, char *node,
                          size_t node_len) {
    if (cc->node_id[0]) {
        snprintf(node, node_len, "%s", cc->node_id);
    } else {
        char host[64] = "node";
        gethostname(host, sizeof host - 1);
        snprintf(node, node_len, "%s:%u", host, port);
    }
    uint32_t boot = 0;
    getrandom(&boot, sizeof boot, 0);
    snprintf(cl->inst, sizeof cl->inst, "%s#%08x", node, boot);
    cl->inst_len = strlen(cl->inst);
    cl->box_len = (size_t)snprintf(cl->box, sizeof cl->box, "orr:inbox:%s", cl->inst);
    snprintf(cl->last_id, sizeof cl->last_id, "0-0");
    cl->ib_len = (size_t)snprintf(cl->ib, sizeof cl->ib, "orr:ib:%s", cl->inst);
}

static int start_loop(orr_cluster *cl) {
    cl->loop.on_inbox = on_mailbox;
    cl->loop.on_tick = on_tick;
    cl->loop.on_other = NULL; /* the Redis connections: orr_loop_handler */
    if (orr_loop_init(&cl->loop) < 0) return ORR_EFAIL;
    orr_loop_tick(&cl->loop, TICK_MS, 1);
    return 0;
}

orr_backend *orr_cluster_backend_start(const orr_config *cfg, uint16_t port, orr_registry *reg,
                                       orr_delivery *dv) {
    orr_cluster *cl = orr_xcalloc(1, sizeof *cl);
    if (start_loop(cl) < 0) {
        orr_log(ORR_LOG_ERROR, NULL, "cluster: its loop: %s", strerror(errno));
        orr_loop_destroy(&cl->loop);
        free(cl);
        return NULL;
    }
    cl->base.ops = &cluster_ops;
    cl->base.reg = reg;
    cl->dv = dv;
    const orr_cluster_config *cc = &cfg->cluster;
    cl->heartbeat_ms = cc->heartbeat_ms;
    cl->node_ttl_ms = cc->node_ttl_ms;
    cl->drain_ms = cfg->drain_ms;
    cl->close_timeout_ms = cfg->close_timeout_ms;
    pthread_mutex_init(&cl->lock, NULL);
    char node[96];
    name_instance(cl, cc, port, node, sizeof node);
    cl->batch_keys = orr_xmalloc(SEND_BATCH * sizeof *cl->batch_keys);
    cl->cap_len = (size_t)snprintf(cl->cap, sizeof cl->cap, "%" PRIu32, cc->inbox_max_messages);
    for (int i = 0; i < SC_N; i++) {
        unsigned char d[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)orr_cluster_scripts[i], strlen(orr_cluster_scripts[i]), d);
        for (int k = 0; k < SHA_DIGEST_LENGTH; k++)
            snprintf(cl->sha[i] + 2 * k, 3, "%02x", d[k]);
    }
    snprintf(cl->why, sizeof cl->why, "connecting to redis");
    cl->cmd = orr_redis_new(cl->loop.epfd, &cc->redis, "commands", on_state, cl);
    cl->sub = orr_redis_new(cl->loop.epfd, &cc->redis, "inbox", on_state, cl);
    cl->pres = orr_redis_new(cl->loop.epfd, &cc->redis, "presence", on_state, cl);
    orr_log(ORR_LOG_INFO, NULL, "cluster: node %s (instance %s), redis %s", node, cl->inst,
            cc->redis_url);
    if (pthread_create(&cl->thread, NULL, cluster_main, cl) != 0) {
        orr_log(ORR_LOG_ERROR, NULL, "cluster: cannot start its thread");
        orr_redis_free(cl->cmd);
        orr_redis_free(cl->sub);
        orr_redis_free(cl->pres);
        free(cl->batch_keys);
        orr_loop_destroy(&cl->loop);
        pthread_mutex_destroy(&cl->lock);
        free(cl);
        return NULL;
    }
    return &cl->base;
}

static void cl_stop(orr_backend *b) {
    orr_cluster *cl = (orr_cluster *)b;
    atomic_store_explicit(&cl->stop, true, memory_order_release);
    orr_xq_wake(&cl->loop.inbox);
    pthread_join(cl->thread, NULL);
    orr_redis_free(cl->cmd);
    orr_redis_free(cl->sub);
    orr_redis_free(cl->pres);
    cl_release_held(cl, true);
    cl_flush_posts(cl); /* answers to what was still in flight (the workers free them) */
    orr_xq_drop(orr_xq_take(&cl->loop.inbox));
    for (cl_answer *a = cl->ans_head, *next; a; a = next) { /* answers nobody will get now */
        next = a->next;
        free(a);
    }
    for (size_t i = 0; i < cl->n_batch; i++)
        cl_req_free(cl->batch[i]);
    free(cl->batch_keys);
    free(cl->park_pools);
    orr_loop_destroy(&cl->loop);
    pthread_mutex_destroy(&cl->lock);
    free(cl);
}

static void cl_draining(orr_backend *b) {
    orr_cluster *cl = (orr_cluster *)b;
    atomic_store_explicit(&cl->draining, true, memory_order_relaxed);
    orr_xq_wake(&cl->loop.inbox);
}

/* From any thread: a copy of rq for the cluster thread. Every result goes
 * through here (ORR_RQ_ANSWER too), so that results reach each connection
 * in the order it started the operations, whichever needed Redis. */
static int cl_submit(orr_backend *b, const orr_reg_req *rq) {
    orr_cluster *cl = (orr_cluster *)b;
    size_t msg_len =
        rq->kind == ORR_RQ_SEND || rq->kind == ORR_RQ_PUBLISH || rq->kind == ORR_RQ_ORPHAN
            ? rq->msg_len
            : 0;
    orr_cl_req *q = orr_xmalloc(sizeof *q + msg_len);
    memset(q, 0, offsetof(orr_cl_req, pool));
    q->kind = rq->kind;
    q->conn = rq->conn;
    q->reply_to = rq->reply_to;
    q->tag = rq->tag;
    q->local_count = rq->local_count;
    q->op = rq->op;
    q->status = rq->status;
    q->count = rq->count;
    q->park = rq->park;
    q->name_len = (uint16_t)rq->name_len;
    q->pool_len = (uint8_t)rq->pool_len;
    q->msg_len = (uint32_t)msg_len;
    if (rq->pool_len) memcpy(q->pool, rq->pool, rq->pool_len);
    if (rq->name_len) memcpy(q->name, rq->name, rq->name_len);
    if (msg_len) memcpy(q->msg, rq->msg, msg_len);
    if (rq->kind == ORR_RQ_REGISTER) {
        uint64_t holder;
        orr_registry_holder_since(b->reg, rq->pool_idx, rq->name, rq->name_len, &holder,
                                  &q->since_ms);
    }
    q->link.type = &req_type;
    orr_xq_push_one(&cl->loop.inbox, &q->link);
    return ORR_RQ_KEPT;
}

static bool cl_ready(orr_backend *b, char *why, size_t whylen) {
    orr_cluster *cl = (orr_cluster *)b;
    if (atomic_load_explicit(&cl->ready, memory_order_relaxed)) return true;
    pthread_mutex_lock(&cl->lock);
    snprintf(why, whylen, "%s", cl->why[0] ? cl->why : "redis not ready");
    pthread_mutex_unlock(&cl->lock);
    return false;
}

static void cl_metrics(orr_backend *b, void (*emit)(void *arg, const char *line), void *arg) {
    orr_cluster *cl = (orr_cluster *)b;
    char line[512];
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } counters[] = {
        {"orrery_cluster_messages_sent_total", "counter", "Messages this node sent to other nodes.",
         offsetof(orr_cluster, sent)},
        {"orrery_cluster_messages_received_total", "counter",
         "Messages other nodes sent to this node.", offsetof(orr_cluster, received)},
        {"orrery_cluster_send_failures_total", "counter",
         "Sends to other nodes that failed for lack of Redis.",
         offsetof(orr_cluster, send_failures)},
        {"orrery_cluster_reaped_nodes_total", "counter",
         "Dead nodes whose names and members this node removed.", offsetof(orr_cluster, reaped)},
        {"orrery_cluster_name_conflicts_total", "counter",
         "Connections closed because a newer registration of their name won after an outage.",
         offsetof(orr_cluster, conflicts)},
        {"orrery_cluster_lease_lapses_total", "counter",
         "Times this node's liveness may have lapsed (not refreshed within node_ttl_ms, or found "
         "expired).",
         offsetof(orr_cluster, lapses)},
        {"orrery_cluster_lease_restores_total", "counter",
         "Times this node's names and memberships were written back after a lapse.",
         offsetof(orr_cluster, restores)},
        {"orrery_cluster_inbox_full_total", "counter",
         "Sends from this node refused because the holder's node had inbox_max_messages waiting.",
         offsetof(orr_cluster, inbox_full)},
        {"orrery_cluster_inbox_waits_total", "counter",
         "Times this node stopped reading its inbox for a tick because a worker's mailbox was "
         "full.",
         offsetof(orr_cluster, inbox_waits)},
        {"orrery_cluster_inbox_lost_total", "counter",
         "Times this node's inbox was found gone from Redis with messages possibly unread.",
         offsetof(orr_cluster, inbox_lost)},
        {"orrery_cluster_park_failures_total", "counter",
         "Names not parked (freed instead) and messages not kept for lack of Redis.",
         offsetof(orr_cluster, park_failures)},
    };
    snprintf(line, sizeof line,
             "# HELP orrery_cluster_redis_up Whether this node reaches Redis (1) or not (0).\n"
             "# TYPE orrery_cluster_redis_up gauge\norrery_cluster_redis_up %d\n",
             atomic_load_explicit(&cl->ready, memory_order_relaxed) ? 1 : 0);
    emit(arg, line);
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        const atomic_uint_fast64_t *v =
            (const atomic_uint_fast64_t *)((const char *)cl + counters[i].off);
        snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", counters[i].name,
                 counters[i].help, counters[i].name, counters[i].type, counters[i].name,
                 (unsigned long long)atomic_load_explicit(v, memory_order_relaxed));
        emit(arg, line);
    }
}
