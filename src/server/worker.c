/*
 * A worker: one thread, one epoll set, its own SO_REUSEPORT listener,
 * connections, timeout lists and inbox.
 */
#include "server/worker.h"

#include "common/log.h"
#include "conn/conn.h"
#include "server/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* epoll data besides the loop's own: a connection pointer, or this tag
 * for the listener (pointers are at least 8-byte aligned, so a small
 * integer never collides with one). */
#define TAG_LISTEN ((void *)(uintptr_t)1)

#define ACCEPT_BATCH 64

/* The worker's inbox items (loop/xq.h): each type has its own struct and
 * its own receiver (see "the inbox" below). */
typedef struct deliver_msg {
    orr_xq_link link;
    orr_payload *payload; /* a reference of its own */
    size_t n;
    uint64_t ids[]; /* the recipients on this worker */
} deliver_msg;

typedef struct result_msg {
    orr_xq_link link;
    reg_pending res;
} result_msg;

typedef struct kill_msg {
    orr_xq_link link;
    uint64_t conn;
} kill_msg;

typedef struct signal_msg { /* drain, shed: nothing but the type */
    orr_xq_link link;
} signal_msg;

/* The config keeps ping_interval_ms below idle_timeout_ms (or 0: off). */
static uint32_t list_timeout(const orr_worker *w, int list_id) {
    const orr_config *cfg = &w->srv->cfg;
    switch (list_id) {
    case LIST_HTTP:
        return cfg->handshake_timeout_ms;
    case LIST_WS:
        return cfg->ping_interval_ms ? cfg->ping_interval_ms : cfg->idle_timeout_ms;
    case LIST_WS_PINGED:
        return cfg->idle_timeout_ms;
    case LIST_CLOSING:
        return cfg->close_timeout_ms;
    default:
        return 0;
    }
}

/* ---- connections and their ids ---- */

orr_conn *worker_conn_new(orr_worker *w, int fd, const struct sockaddr *sa) {
    orr_conn *c = orr_xcalloc(1, sizeof *c);
    uint64_t id = orr_slots_add(&w->slots, c);
    if (!id) {
        free(c);
        return NULL;
    }
    conn_init(&w->cw, c, id, fd, sa);
    return c;
}

orr_conn *orr_worker_find(orr_worker *w, uint64_t id) {
    orr_conn *c = orr_slots_get(&w->slots, id);
    return c && c->phase != PHASE_DEAD ? c : NULL;
}

static void free_zombies(orr_worker *w) {
    for (size_t i = 0; i < w->cw.n_zombies; i++) {
        orr_conn *c = w->cw.zombies[i];
        orr_slots_remove(&w->slots, c->id);
        /* Its route names its pool and its gear's version: the references
         * go with it, not at terminate (this loop pass may still have used
         * the route). The last connection of a version out of service
         * unloads it here. */
        if (c->route) {
            /* Both read before the pool may go: once it has, another
             * worker may refill this binding for a new pool at its idx. */
            const orr_route_target *b = route_of(c->route);
            gear_version *v = b->version;
            pool_unref(b->pool);
            gears_version_unref(v);
        }
        free(c);
    }
    w->cw.n_zombies = 0;
}

/* ---- epoll interest ---- */

static void epoll_add(orr_worker *w, int fd, uint32_t events, void *ptr) {
    if (orr_loop_add(&w->loop, fd, events, ptr) < 0)
        orr_log(ORR_LOG_ERROR, NULL, "worker %d: epoll_ctl add: %s", w->cw.index, strerror(errno));
}

/* ---- accepting ---- */

/* A failed accept is counted every time; it is logged at most once a
 * second for the whole server, since every worker retries on each tick for
 * as long as the shortage lasts. */
static void accept_failed(orr_worker *w, int err, bool paused) {
    orr_server *s = w->srv;
    uint64_t n = atomic_fetch_add_explicit(&s->accept_errors, 1, memory_order_relaxed) + 1;
    int64_t sec = w->loop.now_ms / 1000;
    int_fast64_t last = atomic_load_explicit(&s->accept_error_logged_s, memory_order_relaxed);
    if (last >= sec ||
        !atomic_compare_exchange_strong_explicit(&s->accept_error_logged_s, &last, sec,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    orr_log(paused ? ORR_LOG_ERROR : ORR_LOG_WARN, NULL,
            "worker %d: accept: %s%s (%llu accept errors so far)", w->cw.index, strerror(err),
            paused ? "; pausing accepts until the next tick" : "", (unsigned long long)n);
}

static void on_accept(orr_worker *w) {
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(w->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EINTR || err == ECONNABORTED) return;
            bool shortage = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
            if (shortage) {
                /* Out of descriptors: stop accepting until the next tick
                 * rather than spin on a listener that stays readable. */
                orr_loop_del(&w->loop, w->listen_fd);
                w->accept_paused = true;
            }
            accept_failed(w, err, shortage);
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        orr_conn *c = worker_conn_new(w, fd, (struct sockaddr *)&ss);
        if (!c) {
            close(fd);
            continue;
        }
        if (w->cw.tls && conn_tls_start(&w->cw, c) < 0) {
            orr_log(ORR_LOG_WARN, NULL, "worker %d: TLS: cannot start a handshake: closed",
                    w->cw.index);
            orr_slots_remove(&w->slots, c->id);
            close(fd);
            free(c);
            continue;
        }
        conn_list_move(&w->cw, c, LIST_HTTP);
        epoll_add(w, fd, EPOLLIN | EPOLLRDHUP, c);
    }
}

static void stop_listening(orr_worker *w) {
    if (w->listen_fd < 0) return;
    orr_loop_del(&w->loop, w->listen_fd);
    close(w->listen_fd);
    w->listen_fd = -1;
}

/* ---- timers ---- */

static void expire_list(orr_worker *w, int list_id) {
    uint32_t timeout = list_timeout(w, list_id);
    orr_timed *x;
    while ((x = orr_tlist_expired(&w->cw.lists, list_id, timeout, w->loop.now_ms)) != NULL) {
        orr_conn *c = ORR_CONTAINER_OF(x, orr_conn, t);
        /* conn_on_timeout always moves c out of this list (or kills it). */
        conn_on_timeout(&w->cw, c);
        if (c->list_id == list_id && c->phase != PHASE_DEAD) conn_list_move(&w->cw, c, LIST_NONE);
    }
}

/* Send the drain's 1001 closes spread evenly over drain_ms: by time t, the
 * first ceil(total * t / drain_ms) connections have theirs. */
static void drain_step(orr_worker *w) {
    int64_t span = w->srv->cfg.drain_ms;
    int64_t t = w->loop.now_ms - w->drain_start_ms;
    size_t due = w->drain_total;
    if (span > 0 && t < span)
        due = (size_t)((w->drain_total * (uint64_t)t + (uint64_t)span - 1) / (uint64_t)span);
    if (due == 0 && w->drain_total) due = 1;
    while (w->drain_sent < due) {
        /* Open connections are in LIST_WS or, pinged, in LIST_WS_PINGED. */
        orr_timed *x = orr_tlist_front(&w->cw.lists, LIST_WS_PINGED);
        if (!x) x = orr_tlist_front(&w->cw.lists, LIST_WS);
        if (!x) {
            w->drain_sent = w->drain_total;
            break;
        }
        orr_conn *c = ORR_CONTAINER_OF(x, orr_conn, t);
        /* Waiting for its names to park (below): so are the ones after it,
         * unless input moved one behind it; the next tick looks again. */
        if (c->flags & CF_DRAIN_CLOSED) break;
        w->drain_sent++;
        /* Its names park before its 1001: a send from now on is kept. A
         * backend that parks them elsewhere answers first; meanwhile it waits
         * at the back of the list. */
        if (mailbox_park_for_drain(w, c)) {
            c->flags |= CF_DRAIN_CLOSED;
            conn_list_move(&w->cw, c, LIST_WS);
            continue;
        }
        conn_drain(&w->cw, c);
    }
}

static void on_tick(orr_worker *w) {
    if (w->accept_paused && w->listen_fd >= 0 && !w->draining) {
        w->accept_paused = false;
        epoll_add(w, w->listen_fd, EPOLLIN, TAG_LISTEN);
    }
    expire_list(w, LIST_HTTP);
    expire_list(w, LIST_WS);
    expire_list(w, LIST_WS_PINGED);
    expire_list(w, LIST_CLOSING);
    if (budget_near(&w->srv->node)) budget_shed(w, true);
    /* Parked names past their deadline (a heap: nothing due costs one look). */
    if (w->cw.index == 0) orr_registry_park_expire(w->srv->registry, w->loop.now_ms);
    if (w->draining) {
        drain_step(w);
        int64_t hard = (int64_t)w->srv->cfg.drain_ms + w->srv->cfg.close_timeout_ms;
        if (w->loop.now_ms - w->drain_start_ms >= hard) {
            /* Past drain_ms + close_timeout_ms nothing is waited for any more. */
            for (int id = LIST_HTTP; id < LIST_COUNT; id++) {
                orr_timed *x;
                while ((x = orr_tlist_front(&w->cw.lists, id)) != NULL) {
                    orr_conn *c = ORR_CONTAINER_OF(x, orr_conn, t);
                    if (c->phase == PHASE_WS) conn_terminate(&w->cw, c, ORR_REASON_STOP, NULL, 0);
                    conn_close_now(&w->cw, c);
                }
            }
        }
        if (w->slots.live == w->cw.n_zombies) w->stopping = true;
    }
}

static void arm_timer(orr_worker *w, uint32_t period_ms) {
    orr_loop_tick(&w->loop, period_ms, 0);
}

/* A tick of an eighth of the shortest timeout (within 5..250 ms) keeps
 * timeouts within about 12% of their setting at negligible cost. The ping
 * interval is one of them when set. */
static uint32_t tick_period(const orr_config *cfg) {
    uint32_t m = cfg->idle_timeout_ms;
    if (cfg->close_timeout_ms < m) m = cfg->close_timeout_ms;
    if (cfg->handshake_timeout_ms < m) m = cfg->handshake_timeout_ms;
    if (cfg->ping_interval_ms && cfg->ping_interval_ms < m) m = cfg->ping_interval_ms;
    m /= 8;
    if (m < 5) m = 5;
    if (m > 250) m = 250;
    return m;
}

/* ---- the inbox ---- */

static void drop_free(orr_xq_link *l) {
    free(l);
}

/* Drain and shed: orders for the worker itself. */
static void start_drain(orr_worker *w);

static orr_xq_link *run_drain(orr_xq_link *l, void *ctx) {
    orr_xq_link *next = l->next;
    free(l);
    start_drain(ctx);
    return next;
}

static orr_xq_link *run_shed(orr_xq_link *l, void *ctx) {
    orr_xq_link *next = l->next;
    free(l);
    budget_shed(ctx, true);
    return next;
}

static const orr_xq_type drain_type = {run_drain, drop_free};
static const orr_xq_type shed_type = {run_shed, drop_free};

static void post_signal(orr_worker *w, const orr_xq_type *type) {
    signal_msg *m = orr_xcalloc(1, sizeof *m);
    m->link.type = type;
    orr_xq_push_one(&w->loop.inbox, &m->link);
}

void worker_post_shed(orr_worker *w) {
    post_signal(w, &shed_type);
}

void orr_worker_post_drain(orr_worker *w) {
    post_signal(w, &drain_type);
}

/* A connection whose name a newer registration took (cluster): 1008. */
static orr_xq_link *run_kill(orr_xq_link *l, void *ctx) {
    orr_worker *w = ctx;
    kill_msg *m = ORR_CONTAINER_OF(l, kill_msg, link);
    orr_xq_link *next = l->next;
    orr_conn *c = orr_worker_find(w, m->conn);
    free(m);
    if (c) ws_name_conflict(&w->cw, c);
    return next;
}

static const orr_xq_type kill_type = {run_kill, drop_free};

void worker_post_kill(orr_worker *to, uint64_t conn) {
    kill_msg *m = orr_xcalloc(1, sizeof *m);
    m->link.type = &kill_type;
    m->conn = conn;
    orr_xq_push_one(&to->loop.inbox, &m->link);
}

/* Deliveries. Successive ones to the same connections (publications to
 * one group, sends to one name) are handed over connection by connection:
 * each gets all of them, in order, in one write. */
#define RUN_MAX 64

static size_t deliver_cost(const orr_payload *p, size_t n) {
    return sizeof(deliver_msg) + n * sizeof(uint64_t) + p->len;
}

static orr_xq_link *run_deliver(orr_xq_link *l, void *ctx);

static void drop_deliver(orr_xq_link *l) {
    deliver_msg *m = ORR_CONTAINER_OF(l, deliver_msg, link);
    payload_unref(m->payload);
    free(m);
}

static const orr_xq_type deliver_type = {run_deliver, drop_deliver};

static bool same_recipients(const deliver_msg *a, const orr_xq_link *l) {
    if (!l || l->type != &deliver_type) return false;
    const deliver_msg *b = ORR_CONTAINER_OF(l, deliver_msg, link);
    return a->n == b->n && memcmp(a->ids, b->ids, a->n * sizeof *a->ids) == 0;
}

static orr_xq_link *run_deliver(orr_xq_link *l, void *ctx) {
    orr_worker *w = ctx;
    deliver_msg *m = ORR_CONTAINER_OF(l, deliver_msg, link);
    deliver_msg *run[RUN_MAX];
    const orr_payload *ps[RUN_MAX];
    size_t k = 0;
    orr_xq_link *p = l;
    do {
        run[k] = ORR_CONTAINER_OF(p, deliver_msg, link);
        ps[k] = run[k]->payload;
        k++;
        p = p->next;
    } while (k < RUN_MAX && same_recipients(m, p));
    for (size_t i = 0; i < m->n; i++) {
        orr_conn *c = orr_worker_find(w, m->ids[i]);
        /* Not taken (closing, gone): parked if sent to a name that parks. */
        if (!c || !ws_deliver_server_messages(&w->cw, c, ps, k))
            mailbox_orphans(w, m->ids[i], c, ps, k);
    }
    for (size_t i = 0; i < k; i++) {
        atomic_fetch_sub_explicit(&w->queued_bytes, deliver_cost(run[i]->payload, run[i]->n),
                                  memory_order_relaxed);
        drop_deliver(&run[i]->link);
    }
    return p;
}

orr_xq_link *worker_deliver_msg(orr_worker *to, orr_payload *p, const uint64_t *ids, size_t n) {
    size_t cost = deliver_cost(p, n);
    if (atomic_fetch_add_explicit(&to->queued_bytes, cost, memory_order_relaxed) + cost >
        MAILBOX_MAX_BYTES) {
        atomic_fetch_sub_explicit(&to->queued_bytes, cost, memory_order_relaxed);
        return NULL;
    }
    deliver_msg *m = orr_xmalloc(sizeof *m + n * sizeof *ids);
    m->link.next = NULL;
    m->link.type = &deliver_type;
    m->payload = p;
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    m->n = n;
    memcpy(m->ids, ids, n * sizeof *ids);
    return &m->link;
}

bool worker_post_deliver(orr_worker *to, orr_worker *from, orr_payload *p, const uint64_t *ids,
                         size_t n) {
    orr_xq_link *m = worker_deliver_msg(to, p, ids, n);
    if (!m) {
        if (atomic_fetch_add_explicit(&to->mailbox_dropped, 1, memory_order_relaxed) % 10000 == 0)
            orr_log(ORR_LOG_ERROR, NULL, "worker %d: mailbox over %zu MiB: message dropped",
                    to->cw.index, MAILBOX_MAX_BYTES >> 20);
        return false;
    }
    if (to == from) {
        /* Our own connections: after this epoll batch, no lock, no wake-up. */
        orr_xq_chain_add(&to->local, m);
        return true;
    }
    orr_xq_push_one(&to->loop.inbox, m);
    return true;
}

/* A parked name taken again with kept messages: they go to its new holder
 * from the local list, after the callback that took it and its results. */
typedef struct restore_msg {
    orr_xq_link link;
    uint64_t conn;
    uint32_t pool;
    uint16_t len;
    char name[];
} restore_msg;

static orr_xq_link *run_restore(orr_xq_link *l, void *ctx) {
    restore_msg *m = ORR_CONTAINER_OF(l, restore_msg, link);
    orr_xq_link *next = l->next;
    mailbox_restore(ctx, m->conn, m->pool, m->name, m->len);
    free(m);
    return next;
}

static const orr_xq_type restore_type = {run_restore, drop_free};

void worker_post_restore(orr_worker *w, uint64_t conn, uint32_t pool, const char *name,
                         size_t len) {
    restore_msg *m = orr_xmalloc(sizeof *m + len);
    m->link.next = NULL;
    m->link.type = &restore_type;
    m->conn = conn;
    m->pool = pool;
    m->len = (uint16_t)len;
    memcpy(m->name, name, len);
    orr_xq_chain_add(&w->local, &m->link);
}

/* Registry results a backend completed later: gathered while a list runs
 * (run_result), then grouped by connection (in order for each), so that a
 * connection gets all of its answers in one write (run_results). */
static orr_xq_link *run_result(orr_xq_link *l, void *ctx) {
    orr_worker *w = ctx;
    if (w->n_later == w->cap_later) {
        w->cap_later = w->cap_later ? w->cap_later * 2 : 64;
        w->later = orr_xrealloc(w->later, w->cap_later * sizeof *w->later);
    }
    w->later[w->n_later] = (later_ref){
        .l = l, .conn = ORR_CONTAINER_OF(l, result_msg, link)->res.conn, .seq = w->n_later};
    w->n_later++;
    return l->next;
}

static const orr_xq_type result_type = {run_result, drop_free};

orr_xq_link *worker_result_msg(uint64_t conn, const orr_registry_result *r) {
    result_msg *m = orr_xcalloc(1, sizeof *m);
    m->link.type = &result_type;
    m->res.conn = conn;
    m->res.r = *r;
    memcpy(m->res.name, r->name, r->name_len);
    return &m->link;
}

void worker_post_chain(orr_worker *w, orr_xq_chain *c) {
    orr_xq_push(&w->loop.inbox, c);
}

static int cmp_result(const void *a, const void *b) {
    const later_ref *x = a, *y = b;
    if (x->conn != y->conn) return x->conn < y->conn ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void run_results(orr_worker *w) {
    size_t n = w->n_later;
    later_ref *rs = w->later;
    if (n > 1) qsort(rs, n, sizeof *rs, cmp_result);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        orr_conn *c = orr_worker_find(w, rs[i].conn);
        bool cork = c && c->phase == PHASE_WS;
        uint32_t rx = c ? c->frames_received : 0, tx = c ? c->frames_sent : 0;
        if (cork) out_cork(&w->cw, c);
        for (; j < n && rs[j].conn == rs[i].conn; j++) {
            result_msg *m = ORR_CONTAINER_OF(rs[j].l, result_msg, link);
            m->res.r.name = m->res.name;
            if (c && c->phase != PHASE_DEAD) mailbox_late_result(w, c, &m->res.r);
            free(m);
        }
        if (cork) out_uncork(&w->cw);
        if (c) conn_count_frames(&w->cw, c, rx, tx);
        i = j;
    }
    w->n_later = 0;
}

/* Handles a list taken from the inbox or the local list, and frees it. */
static void handle_list(orr_worker *w, orr_xq_link *l) {
    orr_xq_run(l, w);
    if (w->n_later) run_results(w);
}

/* The local list as it is now; what its deliveries post waits for the next
 * pass, so two connections messaging each other cannot starve the loop. */
static void run_local(orr_worker *w) {
    orr_xq_link *l = w->local.head;
    w->local.head = w->local.tail = NULL;
    handle_list(w, l);
}

static void start_drain(orr_worker *w) {
    if (w->draining) return;
    w->draining = true;
    w->drain_start_ms = w->loop.now_ms;
    stop_listening(w);
    /* Connections between requests, or in the middle of a head, are
     * answered now: 503 for a request under way, a plain close otherwise. */
    orr_timed *x;
    while ((x = orr_tlist_front(&w->cw.lists, LIST_HTTP)) != NULL) {
        orr_conn *c = ORR_CONTAINER_OF(x, orr_conn, t);
        if (c->flags & CF_HTTP_REQ_STARTED) {
            out_cork(&w->cw, c);
            http_respond_simple(&w->cw, c, 503, NULL, "text/plain", "server shutting down\n", 21,
                                false);
            out_uncork(&w->cw);
            /* Still unsent: it waits, bounded by the close timeout. */
            if (c->phase != PHASE_DEAD && c->list_id == LIST_HTTP)
                conn_list_move(&w->cw, c, LIST_CLOSING);
        } else {
            conn_close_now(&w->cw, c);
        }
    }
    w->drain_total =
        orr_tlist_count(&w->cw.lists, LIST_WS) + orr_tlist_count(&w->cw.lists, LIST_WS_PINGED);
    w->drain_sent = 0;
    arm_timer(w, 5);
    drain_step(w);
}

static void on_inbox(orr_loop *l) {
    orr_worker *w = ORR_CONTAINER_OF(l, orr_worker, loop);
    handle_list(w, orr_xq_take(&l->inbox));
}

static void on_loop_tick(orr_loop *l) {
    on_tick(ORR_CONTAINER_OF(l, orr_worker, loop));
}

/* ---- the loop ---- */

static void on_conn_event(orr_worker *w, orr_conn *c, uint32_t events) {
    if (c->phase == PHASE_DEAD) return;
    if (events & EPOLLOUT) {
        out_on_writable(&w->cw, c);
        if (c->phase == PHASE_DEAD) return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        /* Counts start at 0 for a connection that upgrades during this event. */
        uint32_t rx = c->route ? c->frames_received : 0, tx = c->route ? c->frames_sent : 0;
        conn_on_readable(&w->cw, c);
        conn_count_frames(&w->cw, c, rx, tx);
    }
}

/* The listener or a connection. */
static void on_other(orr_loop *l, void *ptr, uint32_t events) {
    orr_worker *w = ORR_CONTAINER_OF(l, orr_worker, loop);
    if (ptr == TAG_LISTEN)
        on_accept(w);
    else
        on_conn_event(w, ptr, events);
}

/* TLS connections whose reads resumed with records waiting inside OpenSSL
 * (conn_tls_resumed): the ones queued before this call, read now; those
 * they queue wait for the next pass. */
static void run_tls_kicks(orr_worker *w) {
    size_t n = w->cw.n_tls_kicks;
    for (size_t i = 0; i < n; i++) {
        orr_conn *c = orr_worker_find(w, w->cw.tls_kicks[i]);
        if (c) conn_tls_kicked(&w->cw, c);
    }
    w->cw.n_tls_kicks -= n;
    memmove(w->cw.tls_kicks, w->cw.tls_kicks + n, w->cw.n_tls_kicks * sizeof *w->cw.tls_kicks);
}

static void *worker_main(void *arg) {
    orr_worker *w = arg;
    arm_timer(w, tick_period(&w->srv->cfg));
    while (!w->stopping) {
        /* Deliveries between its own connections wait for the next pass:
         * it does not sleep while there are any (nor while TLS records wait). */
        bool busy = !orr_xq_chain_empty(&w->local) || w->cw.n_tls_kicks;
        if (orr_loop_pass(&w->loop, busy ? 0 : -1) < 0) {
            orr_log(ORR_LOG_ERROR, NULL, "worker %d: epoll_wait: %s", w->cw.index, strerror(errno));
            break;
        }
        if (w->cw.n_tls_kicks) run_tls_kicks(w);
        if (!orr_xq_chain_empty(&w->local)) run_local(w);
        free_zombies(w);
        if (w->draining && w->slots.live == 0) w->stopping = true;
    }
    return NULL;
}

int orr_worker_init(orr_worker *w, orr_server *srv, int index, int listen_fd) {
    memset(w, 0, sizeof *w);
    w->srv = srv;
    w->cw.node = &srv->node;
    w->cw.loop = &w->loop;
    w->cw.index = index;
    w->listen_fd = listen_fd;
    orr_slots_init(&w->slots, (unsigned)index);
    w->loop.on_inbox = on_inbox;
    w->loop.on_tick = on_loop_tick;
    w->loop.on_other = on_other;
    if (orr_loop_init(&w->loop) < 0) {
        orr_log(ORR_LOG_ERROR, NULL, "worker %d: %s", index, strerror(errno));
        return -1;
    }
    conn_worker_init(&w->cw);
    w->cw.tls = srv->tls;
    epoll_add(w, listen_fd, EPOLLIN, TAG_LISTEN);
    return 0;
}

int orr_worker_start(orr_worker *w) {
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        orr_log(ORR_LOG_ERROR, NULL, "worker %d: pthread_create: %s", w->cw.index, strerror(rc));
        return -1;
    }
    return 0;
}

void orr_worker_join(orr_worker *w) {
    pthread_join(w->thread, NULL);
}

void orr_worker_destroy(orr_worker *w) {
    /* Whatever is left (only after a failed start) is closed without ceremony. */
    for (uint32_t i = 0; i < w->slots.n; i++) {
        orr_conn *c = w->slots.items[i];
        if (!c) continue;
        if (c->flags & CF_TLS) conn_tls_end(&w->cw, c);
        if (c->fd >= 0) close(c->fd);
        conn_in_free(c);
        out_free(c);
        free(c->ctl);
        if (c->route) gears_version_unref(route_of(c->route)->version);
        free(c);
    }
    stop_listening(w);
    if (orr_xq_fd(&w->loop.inbox) >= 0) orr_xq_drop(orr_xq_take(&w->loop.inbox));
    orr_loop_destroy(&w->loop);
    orr_xq_drop(w->local.head);
    w->local.head = w->local.tail = NULL;
    free(w->later);
    orr_idvec_free(&w->scratch_ids);
    orr_slots_free(&w->slots);
    conn_worker_free(&w->cw);
}

/* ---- what connections ask of the server (conn/conn.h) ---- */

static bool host_request(conn_worker *cw, orr_conn *c, const orr_http_request *req,
                         const uint8_t *body, size_t body_len) {
    return request_handle(worker_of(cw), c, req, body, body_len);
}

static bool host_body_wanted(conn_worker *cw, const orr_http_request *req, int *status) {
    return push_body_wanted(worker_of(cw), req, status);
}

static void host_session_ended(conn_worker *cw, orr_conn *c) {
    mailbox_conn_ended(worker_of(cw), c);
}

static void host_shed(conn_worker *cw, bool force) {
    budget_shed(worker_of(cw), force);
}

const conn_host worker_conn_host = {.request = host_request,
                                    .body_wanted = host_body_wanted,
                                    .session_ended = host_session_ended,
                                    .shed = host_shed};
