/*
 * The memory budget: max_buffered_bytes bounds, for the whole node, the
 * buffers clients make it hold: messages being reassembled, request heads
 * and bodies arriving, and output backlogs (conn_node.buffered, in
 * allocated bytes, kept by src/conn as buffers grow and go; conn/conn.h has
 * the counting).
 *
 * Near the budget (past seven eighths of it):
 *  - a message that needs a new or bigger buffer of more than BUDGET_SMALL
 *    bytes is refused (close 1013, try again later; a push body gets 503),
 *    and any that would pass the budget itself;
 *  - each worker closes its connections holding the most unsent output
 *    (1008), largest first, cutting their backlogs at once, until the node
 *    is back under three quarters. A worker does it when its own output
 *    passes the line and on every tick, and output held on another worker
 *    is shed at once: a worker that could not get under the line alone asks
 *    the others (through their inboxes, at most every SHED_EVERY_MS).
 * The eighth kept free lets ordinary traffic (small messages split across
 * reads, short backlogs) go on while the budget is defended.
 */
#include "common/log.h"
#include "conn/conn.h"
#include "server/internal.h"

#include <stdlib.h>

#define SHED_EVERY_MS 10

typedef struct shed_pick {
    size_t pending;
    orr_conn *c;
} shed_pick;

static int by_pending_desc(const void *a, const void *b) {
    const shed_pick *x = a, *y = b;
    return x->pending < y->pending ? 1 : x->pending > y->pending ? -1 : 0;
}

void budget_shed(orr_worker *w, bool force) {
    orr_server *s = w->srv;
    conn_node *node = &s->node;
    if (w->shedding || !budget_near(node)) return;
    /* A pass that got the node back under the line freed an eighth of the
     * budget: the next may come as soon as it is needed. One that could
     * not is not repeated for SHED_EVERY_MS (each scans every connection). */
    if (!force && w->loop.now_ms - w->shed_ms < SHED_EVERY_MS) return;
    w->shedding = true;
    shed_pick *picks = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t i = 0; i < w->slots.n; i++) {
        orr_conn *c = w->slots.items[i];
        if (!c || c->phase == PHASE_DEAD || c->out_len == c->out_off) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            picks = orr_xrealloc(picks, cap * sizeof *picks);
        }
        picks[n++] = (shed_pick){.pending = c->out_len - c->out_off, .c = c};
    }
    if (n > 1) qsort(picks, n, sizeof *picks, by_pending_desc);
    size_t max = budget_max(node), low = max - max / 4;
    /* Connections shed before keep only the frame they were being sent
     * and their close, until the close timeout: not shed twice. */
    for (size_t i = 0; i < n && budget_used(node) > low; i++) {
        orr_conn *c = picks[i].c;
        if (c->phase == PHASE_DEAD || c->reason == ORR_REASON_OVERLOAD) continue;
        atomic_fetch_add_explicit(&s->node.budget_shed, 1, memory_order_relaxed);
        orr_log(ORR_LOG_WARN, conn_ctx(&w->cw, c),
                "memory budget: %zu of %zu bytes buffered on this node; this connection holds %zu "
                "unsent: closing 1008",
                budget_used(node), max, picks[i].pending);
        out_shed(&w->cw, c);
    }
    w->shed_ms = budget_near(node) ? w->loop.now_ms : 0;
    /* Not enough here: the other workers look at theirs now, not at their
     * next tick (at most every SHED_EVERY_MS for the whole node). */
    int_fast64_t last = atomic_load_explicit(&s->shed_wake_ms, memory_order_relaxed);
    if (budget_near(node) && w->loop.now_ms - last >= SHED_EVERY_MS &&
        atomic_compare_exchange_strong_explicit(&s->shed_wake_ms, &last, w->loop.now_ms,
                                                memory_order_relaxed, memory_order_relaxed))
        for (int k = 0; k < s->n_workers; k++)
            if (&s->workers[k] != w) worker_post_shed(&s->workers[k]);
    free(picks);
    w->shedding = false;
}
