/*
 * The registry backend contract (src/registry/backend.h), one suite run
 * against both backends: local (registry/local.c) and cluster (src/cluster,
 * against a redis-server each test starts on a unix socket). The server's
 * part is played by a fake delivery interface that records what a backend
 * hands to connections, so these tests see exactly what a backend may do.
 *
 * An operation is done as src/server/mailbox.c does it: first on the node's
 * table, then submitted; its result is the request's own outcome when
 * submit answers at once, else the one the backend completes later.
 */
#include "registry/backend.h"

#include "cluster/cluster.h"
#include "common/clock.h"
#include "config/config.h"
#include "redis_harness.h"

#include <pthread.h>

/* ---- the fake server side ---- */

#define POOL "gear:chat"
#define POOL_IDX 3u

typedef struct fake_dv {
    orr_delivery base;
    orr_registry *reg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct {
        uint64_t conn;
        orr_registry_result r;
        char name[ORR_NAME_MAX];
    } results[64];
    size_t n_results;
    struct {
        uint64_t conn;
        char msg[64];
    } msgs[64];
    size_t n_msgs;
    uint64_t evicted[8];
    size_t n_evicted, flushes;
} fake_dv;

static fake_dv *fake(orr_delivery *d) {
    return (fake_dv *)d;
}

static void record_msg(fake_dv *f, uint64_t conn, const void *msg, size_t len) {
    cr_assert_lt(f->n_msgs, 64);
    f->msgs[f->n_msgs].conn = conn;
    snprintf(f->msgs[f->n_msgs].msg, sizeof f->msgs[0].msg, "%.*s", (int)len, (const char *)msg);
    f->n_msgs++;
}

static int dv_to_conn(orr_delivery *d, uint64_t conn, const void *msg, size_t len) {
    fake_dv *f = fake(d);
    pthread_mutex_lock(&f->lock);
    record_msg(f, conn, msg, len);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

static size_t dv_to_group(orr_delivery *d, const char *pool, size_t pool_len, const char *group,
                          size_t len, const void *msg, size_t msg_len) {
    fake_dv *f = fake(d);
    if (pool_len != strlen(POOL) || memcmp(pool, POOL, pool_len) != 0) return 0;
    orr_idvec ids = {0};
    size_t n = orr_registry_members(f->reg, POOL_IDX, group, len, &ids);
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < n; i++)
        record_msg(f, ids.ids[i], msg, msg_len);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    orr_idvec_free(&ids);
    return n;
}

static void dv_complete(orr_delivery *d, uint64_t conn, const orr_registry_result *r) {
    fake_dv *f = fake(d);
    pthread_mutex_lock(&f->lock);
    cr_assert_lt(f->n_results, 64);
    f->results[f->n_results].conn = conn;
    f->results[f->n_results].r = *r;
    memcpy(f->results[f->n_results].name, r->name, r->name_len);
    f->results[f->n_results].r.name = f->results[f->n_results].name;
    f->n_results++;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static void dv_evict(orr_delivery *d, uint64_t conn) {
    fake_dv *f = fake(d);
    pthread_mutex_lock(&f->lock);
    f->evicted[f->n_evicted++ % 8] = conn;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static void dv_flush(orr_delivery *d) {
    fake_dv *f = fake(d);
    pthread_mutex_lock(&f->lock);
    f->flushes++;
    pthread_mutex_unlock(&f->lock);
}

static size_t dv_pool_name(orr_delivery *d, uint32_t idx, char *out, size_t cap) {
    (void)d;
    if (idx != POOL_IDX) return 0;
    return (size_t)snprintf(out, cap, "%s", POOL);
}

static void dv_park_count(orr_delivery *d, const char *pool, size_t pool_len,
                          const orr_park_stats *add, int64_t names) {
    (void)d, (void)pool, (void)pool_len, (void)add, (void)names;
}

static const orr_delivery_ops fake_ops = {dv_to_conn, dv_to_group,  dv_complete,  dv_evict,
                                          dv_flush,   dv_pool_name, dv_park_count};

/* ---- a node: its table, its backend, its delivery ---- */

typedef struct node {
    orr_registry *reg;
    orr_backend *be;
    fake_dv dv;
    size_t taken; /* results already read by result_for */
} node;

static bool use_cluster;

/* Its table and delivery, before its backend starts. */
static void node_init(node *n) {
    memset(n, 0, sizeof *n);
    n->reg = orr_registry_new();
    n->dv.base.ops = &fake_ops;
    n->dv.reg = n->reg;
    pthread_mutex_init(&n->dv.lock, NULL);
    pthread_cond_init(&n->dv.cond, NULL);
}

/* Its backend, started on what its table holds: ready when this returns. */
static void node_run(node *n, const char *id) {
    if (!use_cluster) {
        n->be = orr_local_backend_new(n->reg);
    } else {
        orr_config cfg;
        orr_config_defaults(&cfg);
        cfg.cluster.enabled = true;
        snprintf(cfg.cluster.redis_url, sizeof cfg.cluster.redis_url, "unix:%s", sock_path);
        char why[128];
        cr_assert_eq(
            orr_redis_addr_parse(cfg.cluster.redis_url, &cfg.cluster.redis, why, sizeof why), 0,
            "%s", why);
        snprintf(cfg.cluster.node_id, sizeof cfg.cluster.node_id, "%s", id);
        cfg.cluster.heartbeat_ms = 100;
        cfg.cluster.node_ttl_ms = 1000;
        n->be = orr_cluster_backend_start(&cfg, 1, n->reg, &n->dv.base);
        orr_config_free(&cfg);
    }
    cr_assert_not_null(n->be);
    char why[160] = "";
    int64_t end = now_ms() + 5000;
    while (!n->be->ops->ready(n->be, why, sizeof why) && now_ms() < end)
        usleep(5000);
    cr_assert(n->be->ops->ready(n->be, why, sizeof why), "%s: not ready: %s", n->be->ops->name,
              why);
}

static void node_start(node *n, const char *id) {
    node_init(n);
    node_run(n, id);
}

static void node_stop(node *n) {
    n->be->ops->stop(n->be);
    orr_registry_free(n->reg);
    pthread_mutex_destroy(&n->dv.lock);
    pthread_cond_destroy(&n->dv.cond);
}

static orr_reg_req req(orr_rq_kind kind, orr_registry_op op, int status, uint64_t conn,
                       const char *name) {
    return (orr_reg_req){.kind = kind,
                         .op = op,
                         .status = status,
                         .conn = conn,
                         .reply_to = conn,
                         .tag = 7,
                         .pool_idx = POOL_IDX,
                         .pool = POOL,
                         .pool_len = strlen(POOL),
                         .name = name,
                         .name_len = strlen(name)};
}

/* The next result the backend completes for anyone (in completion order). */
static orr_registry_result next_completed(node *n, uint64_t *conn) {
    fake_dv *f = &n->dv;
    pthread_mutex_lock(&f->lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    while (f->n_results <= n->taken)
        if (pthread_cond_timedwait(&f->cond, &f->lock, &until) != 0) break;
    cr_assert_gt(f->n_results, n->taken, "%s: no result completed", n->be->ops->name);
    orr_registry_result r = f->results[n->taken].r;
    *conn = f->results[n->taken].conn;
    n->taken++;
    pthread_mutex_unlock(&f->lock);
    return r;
}

/* Submits rq: its answer, now or once completed. */
static orr_registry_result submit(node *n, const orr_reg_req *rq) {
    int rc = n->be->ops->submit(n->be, rq);
    cr_assert(rc == 0 || rc == ORR_RQ_KEPT, "submit: %d", rc);
    if (rc == 0)
        return (orr_registry_result){.op = rq->op,
                                     .status = rq->status,
                                     .count = rq->count,
                                     .name = rq->name,
                                     .name_len = rq->name_len,
                                     .tag = rq->tag};
    uint64_t conn;
    orr_registry_result r = next_completed(n, &conn);
    cr_expect_eq(conn, rq->reply_to);
    /* A kept send comes back marked as one (mailbox_late_result makes it UNIQUE_SEND). */
    cr_expect_eq(r.op, rq->kind == ORR_RQ_SEND ? ORR_OP_ROUTED_SEND : rq->op);
    cr_expect_eq(r.tag, rq->tag, "the tag comes back");
    cr_expect_eq(r.name_len, rq->name_len);
    cr_expect_eq(memcmp(r.name, rq->name, rq->name_len), 0, "the name comes back");
    return r;
}

/* The gear API's operations, as mailbox.c does them. */
static int do_register(node *n, uint64_t conn, const char *name) {
    int rc = n->be->ops->take_name(n->be, POOL_IDX, name, strlen(name), conn);
    orr_reg_req rq =
        req(rc == 0 ? ORR_RQ_REGISTER : ORR_RQ_ANSWER, ORR_OP_UNIQUE_REGISTER, rc, conn, name);
    int status = submit(n, &rq).status;
    /* A result that came back later confirms the claim, or it goes. */
    if (status == ORR_OK)
        orr_registry_confirm(n->reg, POOL_IDX, name, strlen(name), conn);
    else if (rc == 0)
        orr_registry_unregister(n->reg, POOL_IDX, name, strlen(name), conn);
    return status;
}

static int do_unregister(node *n, uint64_t conn, const char *name) {
    int rc = orr_registry_unregister(n->reg, POOL_IDX, name, strlen(name), conn);
    orr_reg_req rq =
        req(rc == 0 ? ORR_RQ_UNREGISTER : ORR_RQ_ANSWER, ORR_OP_UNIQUE_UNREGISTER, rc, conn, name);
    return submit(n, &rq).status;
}

/* A send to a name the node's table does not hold. */
static int do_send_away(node *n, uint64_t conn, const char *name, const char *msg) {
    orr_reg_req rq = req(ORR_RQ_SEND, ORR_OP_UNIQUE_SEND, ORR_ENOTFOUND, conn, name);
    rq.msg = msg;
    rq.msg_len = strlen(msg);
    return submit(n, &rq).status;
}

static int do_join(node *n, uint64_t conn, const char *group) {
    int rc = orr_registry_join(n->reg, POOL_IDX, group, strlen(group), conn);
    orr_reg_req rq = req(rc == 0 ? ORR_RQ_JOIN : ORR_RQ_ANSWER, ORR_OP_GROUP_JOIN, rc, conn, group);
    return submit(n, &rq).status;
}

/* A publication whose members here were reached already (local). */
static uint64_t do_publish(node *n, uint64_t conn, const char *group, const char *msg,
                           uint64_t local) {
    orr_reg_req rq = req(ORR_RQ_PUBLISH, ORR_OP_GROUP_PUBLISH, 0, conn, group);
    rq.count = rq.local_count = local;
    rq.msg = msg;
    rq.msg_len = strlen(msg);
    orr_registry_result r = submit(n, &rq);
    cr_expect_eq(r.status, ORR_OK);
    return r.count;
}

static void do_gone(node *n, uint64_t conn) {
    orr_registry_conn_gone(n->reg, conn);
    orr_reg_req rq = {.kind = ORR_RQ_GONE, .conn = conn};
    n->be->ops->submit(n->be, &rq); /* nobody waits */
}

/* Waits until the node's delivery has handed over at least k messages. */
static bool messages_reach(node *n, size_t k) {
    int64_t end = now_ms() + 5000;
    for (;;) {
        pthread_mutex_lock(&n->dv.lock);
        size_t have = n->dv.n_msgs;
        pthread_mutex_unlock(&n->dv.lock);
        if (have >= k) return true;
        if (now_ms() >= end) return false;
        usleep(2000);
    }
}

/* ---- the contract: each case runs against both backends ---- */

static void suite_init(void) {
    setup();
    if (use_cluster) server_start();
}

static void init_local(void) {
    use_cluster = false;
    suite_init();
}

static void init_cluster(void) {
    use_cluster = true;
    suite_init();
}

TestSuite(backend_local, .init = init_local, .fini = teardown, .timeout = 60);
TestSuite(backend_cluster, .init = init_cluster, .fini = teardown, .timeout = 60);

#define CONTRACT(name)                                                                             \
    static void name(void);                                                                        \
    Test(backend_local, name) {                                                                    \
        name();                                                                                    \
    }                                                                                              \
    Test(backend_cluster, name) {                                                                  \
        name();                                                                                    \
    }                                                                                              \
    static void name(void)

CONTRACT(a_name_is_held_once) {
    node a;
    node_start(&a, "a");
    cr_expect_eq(do_register(&a, 11, "alice"), ORR_OK);
    cr_expect_eq(do_register(&a, 11, "alice"), ORR_OK, "again by its holder");
    cr_expect_eq(do_register(&a, 12, "alice"), ORR_ETAKEN);
    cr_expect_eq(do_unregister(&a, 12, "alice"), ORR_ENOTFOUND, "not its holder");
    cr_expect_eq(do_unregister(&a, 11, "alice"), ORR_OK);
    cr_expect_eq(do_register(&a, 12, "alice"), ORR_OK, "free again");
    node_stop(&a);
}

CONTRACT(results_keep_each_connections_order) {
    node a;
    node_start(&a, "a");
    /* Answers known on the node and answers that need the backend, mixed:
     * each submit waits for its own result, and they come in order. */
    orr_backend *be = a.be;
    int rc = be->ops->take_name(be, POOL_IDX, "x", 1, 21);
    cr_assert_eq(rc, 0);
    orr_reg_req rqs[4] = {
        req(ORR_RQ_REGISTER, ORR_OP_UNIQUE_REGISTER, 0, 21, "x"),
        req(ORR_RQ_ANSWER, ORR_OP_UNIQUE_SEND, ORR_OK, 21, "y"),
        req(ORR_RQ_SEND, ORR_OP_UNIQUE_SEND, ORR_ENOTFOUND, 21, "nobody"),
        req(ORR_RQ_ANSWER, ORR_OP_GROUP_LEAVE, ORR_ENOTFOUND, 21, "g"),
    };
    rqs[2].msg = "m";
    rqs[2].msg_len = 1;
    int kept = 0;
    for (int i = 0; i < 4; i++) {
        rqs[i].tag = (uint64_t)i;
        kept += be->ops->submit(be, &rqs[i]) == ORR_RQ_KEPT;
    }
    cr_expect(kept == 0 || kept == 4, "a backend keeps all of a connection's results or none");
    if (kept) {
        static const int want[4] = {ORR_OK, ORR_OK, ORR_ENOTFOUND, ORR_ENOTFOUND};
        for (uint64_t i = 0; i < 4; i++) {
            uint64_t conn;
            orr_registry_result r = next_completed(&a, &conn);
            cr_expect_eq(conn, 21);
            cr_expect_eq(r.tag, i, "result %llu came in place %llu", (unsigned long long)r.tag,
                         (unsigned long long)i);
            cr_expect_eq(r.status, want[i]);
        }
    }
    node_stop(&a);
}

CONTRACT(a_send_the_node_cannot_answer) {
    node a;
    node_start(&a, "a");
    cr_expect_eq(do_send_away(&a, 31, "nobody", "hello"), ORR_ENOTFOUND);
    node_stop(&a);
}

CONTRACT(a_publication_counts_at_least_the_nodes_members) {
    node a;
    node_start(&a, "a");
    cr_expect_eq(do_join(&a, 41, "room"), ORR_OK);
    cr_expect_eq(do_join(&a, 42, "room"), ORR_OK);
    cr_expect_eq(do_publish(&a, 41, "room", "hi", 2), 2);
    cr_expect_eq(do_publish(&a, 41, "empty", "hi", 0), 0);
    node_stop(&a);
}

CONTRACT(a_connection_gone_gives_its_names_back) {
    node a;
    node_start(&a, "a");
    cr_expect_eq(do_register(&a, 51, "bob"), ORR_OK);
    do_gone(&a, 51);
    cr_expect_eq(do_register(&a, 52, "bob"), ORR_OK);
    node_stop(&a);
}

CONTRACT(a_healthy_backend_lets_the_node_deliver) {
    node a;
    node_start(&a, "a");
    /* The lease is renewed by heartbeats (100 ms here, 1 s to live): on a
     * loaded machine (sanitizers, suites beside it) one may come late, so
     * the node must deliver again within a few heartbeats, not at once. */
    int64_t end = now_ms() + 5000;
    while (!a.be->ops->holder_valid(a.be, orr_mono_ms()) && now_ms() < end)
        usleep(5000);
    cr_expect(a.be->ops->holder_valid(a.be, orr_mono_ms()));
    char why[64];
    cr_expect(a.be->ops->ready(a.be, why, sizeof why));
    node_stop(&a);
}

/* ---- what only a shared registry does: two nodes on one Redis ---- */

Test(backend_cluster, a_name_held_on_another_node) {
    node a, b;
    node_start(&a, "a");
    node_start(&b, "b");
    cr_expect_eq(do_register(&a, 61, "carol"), ORR_OK);
    cr_expect_eq(do_register(&b, 71, "carol"), ORR_ETAKEN, "held on node a");
    /* b's send reaches a's holder through a's inbox. */
    cr_expect_eq(do_send_away(&b, 72, "carol", "from b"), ORR_OK);
    cr_assert(messages_reach(&a, 1), "node a's holder got nothing");
    cr_expect_eq(a.dv.msgs[0].conn, 61);
    cr_expect_str_eq(a.dv.msgs[0].msg, "from b");
    /* Gone on a: b may take it once Redis applied it, which a later answer
     * to node a says (Redis runs one node's requests in order). */
    do_gone(&a, 61);
    cr_expect_eq(do_send_away(&a, 62, "nobody", "x"), ORR_ENOTFOUND);
    cr_expect_eq(do_register(&b, 71, "carol"), ORR_OK);
    node_stop(&b);
    node_stop(&a);
}

/* A node writes its table back when it (re)connects. A claim its table
 * holds but Redis has not answered yet (its REGISTER in flight, or queued)
 * is written back under the ordinary rule, not as a registration that an
 * outage kept: it never takes the name from a live holder elsewhere, whose
 * connection would be closed for a claim that is then refused (seen in
 * cluster_faults: a refused claimant's write-back closed the holder 1008,
 * and a send acknowledged in between reached the refused claimant). */
Test(backend_cluster, a_claim_not_confirmed_yet_never_takes_a_live_holders_name) {
    node a, b;
    node_start(&a, "a");
    cr_expect_eq(do_register(&a, 61, "dave"), ORR_OK);
    usleep(5000); /* b's claim is the newer */
    node_init(&b);
    cr_assert_eq(orr_registry_claim(b.reg, POOL_IDX, "dave", 4, 71), 0);
    node_run(&b, "b"); /* its write-back runs as it becomes ready */
    cr_expect_eq(do_send_away(&b, 72, "dave", "to a"), ORR_OK);
    cr_assert(messages_reach(&a, 1), "the live holder on node a got nothing");
    cr_expect_eq(a.dv.msgs[0].conn, 61);
    cr_expect_eq(b.dv.n_msgs, 0, "nothing reached the claim on b");
    cr_expect_eq(a.dv.n_evicted, 0, "a's holder was told to close for b's claim");
    node_stop(&b);
    node_stop(&a);
}

Test(backend_cluster, a_publication_reaches_every_nodes_members) {
    node a, b;
    node_start(&a, "a");
    node_start(&b, "b");
    cr_expect_eq(do_join(&a, 81, "room"), ORR_OK);
    cr_expect_eq(do_join(&b, 91, "room"), ORR_OK);
    cr_expect_eq(do_join(&b, 92, "room"), ORR_OK);
    /* From a: its own member was reached already (1); b's two count too. */
    cr_expect_eq(do_publish(&a, 81, "room", "to all", 1), 3);
    cr_assert(messages_reach(&b, 2), "node b's members got nothing");
    uint64_t sum = b.dv.msgs[0].conn + b.dv.msgs[1].conn;
    cr_expect_eq(sum, 91 + 92);
    cr_expect_str_eq(b.dv.msgs[0].msg, "to all");
    cr_expect_eq(a.dv.n_msgs, 0, "a's own member is not sent it again");
    node_stop(&b);
    node_stop(&a);
}

Test(backend_cluster, redis_away_is_said) {
    node a;
    node_start(&a, "a");
    server_kill(SIGKILL);
    char why[160] = "";
    int64_t end = now_ms() + 5000;
    while (a.be->ops->ready(a.be, why, sizeof why) && now_ms() < end)
        usleep(5000);
    cr_expect_not(a.be->ops->ready(a.be, why, sizeof why), "still ready with Redis gone");
    cr_expect_neq(why[0], '\0', "no reason given");
    /* Meanwhile a send the node cannot answer is refused, not lost in a queue. */
    cr_expect_eq(do_send_away(&a, 99, "nobody", "x"), ORR_ENOTFOUND);
    node_stop(&a);
}

typedef struct lines {
    size_t n;
    bool redis_up;
} lines;

static void count_line(void *arg, const char *text) {
    lines *l = arg;
    /* Whole Prometheus lines: comments or samples of orrery_* metrics. */
    cr_expect(strncmp(text, "# HELP orrery_", 14) == 0 || strncmp(text, "orrery_", 7) == 0, "%s",
              text);
    cr_expect_eq(text[strlen(text) - 1], '\n');
    if (strstr(text, "orrery_cluster_redis_up 1")) l->redis_up = true;
    l->n++;
}

CONTRACT(metrics_are_prometheus_lines) {
    node a;
    node_start(&a, "a");
    lines l = {0};
    a.be->ops->metrics(a.be, count_line, &l);
    if (use_cluster) {
        cr_expect_str_eq(a.be->ops->name, "cluster");
        cr_expect(l.redis_up);
    } else {
        cr_expect_str_eq(a.be->ops->name, "local");
        cr_expect_eq(l.n, 0, "a single node has nothing of its own to report");
    }
    node_stop(&a);
}
