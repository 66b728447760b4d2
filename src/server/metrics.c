/*
 * GET /metrics in the Prometheus text format (version 0.0.4): per executor
 * pool alive (a tenant pool freed with its last connection drops out, its
 * counters with it), the connections and their limit, rejections, data
 * frames in and out, slow-consumer closes; handshakes by status; registry
 * sizes.
 * Per-worker counters are summed here; nothing on a hot path takes a lock
 * or a shared atomic for them.
 */
#include "server/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(k > 0 ? k : 0);
        b->p = orr_xrealloc(b->p, b->cap);
    }
}

static void emit_line(void *arg, const char *line) {
    sb_printf(arg, "%s", line);
}

static const int hs_codes[HS_N] = {
    [HS_101] = 101, [HS_400] = 400, [HS_404] = 404, [HS_426] = 426, [HS_500] = 500, [HS_503] = 503};

void metrics_count_handshake(orr_server *s, int status) {
    int i = HS_OTHER;
    for (int k = 0; k < HS_OTHER_4XX; k++)
        if (hs_codes[k] == status) i = k;
    if (i == HS_OTHER && status >= 400 && status < 500) i = HS_OTHER_4XX;
    atomic_fetch_add_explicit(&s->hs_status[i], 1, memory_order_relaxed);
}

/* Pool names are [a-z0-9_:.-] (checked on creation): no escaping needed. */
static void family(sbuf *b, const char *name, const char *type, const char *help) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One live pool's numbers, copied under the pools lock (a pool may be
 * freed, and its idx reused, as soon as the lock is let go). */
typedef struct pool_row {
    char name[POOL_NAME_MAX];
    unsigned conns, max;
    uint64_t rejected, slow_closes, frames_in, frames_out;
    uint32_t idx;
    bool parks; /* park_ms set, or it parked names before */
    orr_park_stats park;
} pool_row;

typedef struct pool_rows {
    orr_server *s;
    pool_row *v;
    size_t n, cap;
} pool_rows;

static void add_row(void *arg, const orr_pool *p) {
    pool_rows *rows = arg;
    if (rows->n == rows->cap) {
        rows->cap = rows->cap ? rows->cap * 2 : 64;
        rows->v = orr_xrealloc(rows->v, rows->cap * sizeof *rows->v);
    }
    pool_row *r = &rows->v[rows->n++];
    memcpy(r->name, p->name, sizeof r->name);
    r->conns = atomic_load_explicit(&p->conns, memory_order_relaxed);
    r->max = atomic_load_explicit(&p->max, memory_order_relaxed);
    r->rejected = atomic_load_explicit(&p->rejected, memory_order_relaxed);
    r->slow_closes = atomic_load_explicit(&p->slow_closes, memory_order_relaxed);
    r->frames_in = r->frames_out = 0;
    r->idx = p->idx;
    r->parks = atomic_load_explicit(&p->park_ms, memory_order_relaxed) != 0;
    for (int wi = 0; wi < rows->s->n_workers; wi++) {
        const pool_stats *ps = rows->s->workers[wi].cw.pstats;
        if (!ps) continue;
        r->frames_in += atomic_load_explicit(&ps[p->idx].frames_in, memory_order_relaxed);
        r->frames_out += atomic_load_explicit(&ps[p->idx].frames_out, memory_order_relaxed);
    }
}

/* Parking, for the pools that park (or did). */
static void render_parking(sbuf *b, const pool_row *r, size_t n) {
    family(b, "orrery_parked_names", "gauge",
           "Unique names parked (their connection ended) and keeping messages, per pool.");
    for (size_t i = 0; i < n; i++)
        if (r[i].parks)
            sb_printf(b, "orrery_parked_names{pool=\"%s\"} %llu\n", r[i].name,
                      (unsigned long long)r[i].park.names);
    family(b, "orrery_parked_messages_total", "counter",
           "Messages kept for parked names: handed to the name's next holder (delivered), "
           "still kept when the name expired (expired), or dropped past a cap (dropped).");
    for (size_t i = 0; i < n; i++) {
        if (!r[i].parks) continue;
        sb_printf(b, "orrery_parked_messages_total{pool=\"%s\",result=\"delivered\"} %llu\n",
                  r[i].name, (unsigned long long)r[i].park.delivered);
        sb_printf(b, "orrery_parked_messages_total{pool=\"%s\",result=\"expired\"} %llu\n",
                  r[i].name, (unsigned long long)r[i].park.expired);
        sb_printf(b, "orrery_parked_messages_total{pool=\"%s\",result=\"dropped\"} %llu\n",
                  r[i].name, (unsigned long long)r[i].park.dropped);
    }
}

/* Per pool: only the pools alive now, in idx order. */
static void render_pools(sbuf *b, orr_server *s) {
    pool_rows rows = {.s = s};
    pools_foreach(s, add_row, &rows);
    /* The parking counters take the registry's lock: not under the pools' one, which the
     * cluster thread takes while holding the registry's (write_back -> dv_pool_name). */
    for (size_t i = 0; i < rows.n; i++) {
        pool_row *w = &rows.v[i];
        orr_registry_park_stats(s->registry, w->idx, &w->park);
        w->parks =
            w->parks || w->park.names || w->park.delivered || w->park.expired || w->park.dropped;
    }
    const pool_row *r = rows.v;
    size_t n = rows.n;
    family(b, "orrery_ws_connections", "gauge", "Websocket connections open, per executor pool.");
    for (size_t i = 0; i < n; i++)
        sb_printf(b, "orrery_ws_connections{pool=\"%s\"} %u\n", r[i].name, r[i].conns);
    family(b, "orrery_ws_max_connections", "gauge", "The pool's ws_max_connections on this node.");
    for (size_t i = 0; i < n; i++)
        sb_printf(b, "orrery_ws_max_connections{pool=\"%s\"} %u\n", r[i].name, r[i].max);
    family(b, "orrery_ws_rejected_total", "counter",
           "Handshakes refused because the pool was full.");
    for (size_t i = 0; i < n; i++)
        sb_printf(b, "orrery_ws_rejected_total{pool=\"%s\"} %llu\n", r[i].name,
                  (unsigned long long)r[i].rejected);
    family(b, "orrery_ws_frames_received_total", "counter", "Data messages received from clients.");
    for (size_t i = 0; i < n; i++)
        sb_printf(b, "orrery_ws_frames_received_total{pool=\"%s\"} %llu\n", r[i].name,
                  (unsigned long long)r[i].frames_in);
    family(b, "orrery_ws_frames_sent_total", "counter", "Data messages sent to clients.");
    for (size_t i = 0; i < n; i++)
        sb_printf(b, "orrery_ws_frames_sent_total{pool=\"%s\"} %llu\n", r[i].name,
                  (unsigned long long)r[i].frames_out);
    family(b, "orrery_ws_slow_consumer_closes_total", "counter",
           "Connections closed (1008) because their client did not read.");
    for (size_t i = 0; i < n; i++)
        sb_printf(b, "orrery_ws_slow_consumer_closes_total{pool=\"%s\"} %llu\n", r[i].name,
                  (unsigned long long)r[i].slow_closes);
    render_parking(b, r, n);
    free(rows.v);
}

static void render_handshakes(sbuf *b, orr_server *s) {
    family(b, "orrery_ws_handshakes_total", "counter",
           "Requests to websocket routes, by response status.");
    static const char *labels[HS_N] = {"101", "400", "404", "426", "500", "503", "4xx", "other"};
    for (int i = 0; i < HS_N; i++)
        sb_printf(b, "orrery_ws_handshakes_total{status=\"%s\"} %llu\n", labels[i],
                  (unsigned long long)atomic_load_explicit(&s->hs_status[i], memory_order_relaxed));
}

/* What the node holds for clients and what it refused or shed to stay bounded. */
static void render_memory(sbuf *b, orr_server *s) {
    family(b, "orrery_mailbox_dropped_total", "counter",
           "Messages refused because the receiving worker's mailbox was full.");
    uint64_t dropped = 0;
    for (int wi = 0; wi < s->n_workers; wi++)
        dropped += atomic_load_explicit(&s->workers[wi].mailbox_dropped, memory_order_relaxed);
    sb_printf(b, "orrery_mailbox_dropped_total %llu\n", (unsigned long long)dropped);

    family(
        b, "orrery_buffered_bytes", "gauge",
        "Bytes held for connections: messages being reassembled, request bodies, unsent output.");
    sb_printf(b, "orrery_buffered_bytes %zu\n",
              atomic_load_explicit(&s->node.buffered, memory_order_relaxed));
    family(b, "orrery_max_buffered_bytes", "gauge", "The memory budget (max_buffered_bytes).");
    sb_printf(b, "orrery_max_buffered_bytes %zu\n",
              atomic_load_explicit(&s->node.max_buffered_bytes, memory_order_relaxed));
    family(b, "orrery_budget_closes_total", "counter",
           "Connections closed to keep within max_buffered_bytes: a message refused (1013), output "
           "shed (1008).");
    sb_printf(
        b, "orrery_budget_closes_total{reason=\"message_refused\"} %llu\n",
        (unsigned long long)atomic_load_explicit(&s->node.budget_refused, memory_order_relaxed));
    sb_printf(b, "orrery_budget_closes_total{reason=\"output_shed\"} %llu\n",
              (unsigned long long)atomic_load_explicit(&s->node.budget_shed, memory_order_relaxed));
}

static void render_registry(sbuf *b, orr_server *s) {
    family(b, "orrery_accept_errors_total", "counter",
           "Failed accept calls, mostly for want of file descriptors or memory (the worker then "
           "pauses accepting until its next tick).");
    sb_printf(b, "orrery_accept_errors_total %llu\n",
              (unsigned long long)atomic_load_explicit(&s->accept_errors, memory_order_relaxed));
    s->backend->ops->metrics(s->backend, emit_line, b);
    orr_registry_counts rc;
    orr_registry_get_counts(s->registry, &rc);
    family(b, "orrery_registry_names", "gauge", "Unique names held on this node.");
    sb_printf(b, "orrery_registry_names %zu\n", rc.names);
    family(b, "orrery_registry_groups", "gauge", "Groups with members on this node.");
    sb_printf(b, "orrery_registry_groups %zu\n", rc.groups);
    family(b, "orrery_registry_memberships", "gauge", "Group memberships on this node.");
    sb_printf(b, "orrery_registry_memberships %zu\n", rc.memberships);
}

char *metrics_render(orr_server *s, size_t *len) {
    sbuf b = {.p = orr_xmalloc(8192), .cap = 8192};
    render_pools(&b, s);
    render_handshakes(&b, s);
    render_memory(&b, s);
    render_registry(&b, s);
    gears_metrics(s, emit_line, &b);
    *len = b.n;
    return b.p;
}
