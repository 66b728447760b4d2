/*
 * The delivery interface (registry/backend.h) as the server implements it
 * for a backend's own thread: what the cluster hands to connections goes
 * through here, never through worker internals.
 *
 * Messages and results are chained per worker and handed over by flush
 * (one lock and at most one wake-up per worker per chain); a publication
 * and an eviction first hand over what is chained, so that they follow it.
 * Flush hands over every worker's messages before any worker's results: a
 * connection that sends directly again once its routed send is answered
 * (ORR_OP_ROUTED_SEND) finds that send already on its receiver's worker.
 */
#include "server/internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct srv_delivery {
    orr_delivery base;
    orr_server *srv;
    orr_xq_chain *post, *res; /* [n_workers]: messages, results */
    orr_idvec scratch;        /* a publication's members, reused */
} srv_delivery;

static srv_delivery *of(orr_delivery *d) {
    return (srv_delivery *)d;
}

static orr_worker *worker_for(srv_delivery *sd, uint64_t conn) {
    unsigned wi = (unsigned)(conn >> 56);
    return wi < (unsigned)sd->srv->n_workers ? &sd->srv->workers[wi] : NULL;
}

static void dv_flush(orr_delivery *d) {
    srv_delivery *sd = of(d);
    for (int i = 0; i < sd->srv->n_workers; i++)
        if (!orr_xq_chain_empty(&sd->post[i]))
            worker_post_chain(&sd->srv->workers[i], &sd->post[i]);
    for (int i = 0; i < sd->srv->n_workers; i++)
        if (!orr_xq_chain_empty(&sd->res[i])) worker_post_chain(&sd->srv->workers[i], &sd->res[i]);
}

static int dv_to_conn(orr_delivery *d, uint64_t conn, const void *msg, size_t len) {
    srv_delivery *sd = of(d);
    orr_worker *w = worker_for(sd, conn);
    if (!w) return ORR_ENOTFOUND;
    orr_payload *m = payload_new(msg, len);
    m->to_name = true; /* sent to its name: kept again if it cannot be delivered */
    orr_xq_link *l = worker_deliver_msg(w, m, &conn, 1);
    payload_unref(m);
    if (!l) return ORR_EAGAIN;
    orr_xq_chain_add(&sd->post[w->cw.index], l);
    return 0;
}

static size_t dv_to_group(orr_delivery *d, const char *pool, size_t pool_len, const char *group,
                          size_t len, const void *msg, size_t msg_len) {
    srv_delivery *sd = of(d);
    orr_pool *p = pools_acquire(sd->srv, pool, pool_len, false);
    if (!p) return 0; /* nobody here uses it: no members */
    orr_idvec *ids = &sd->scratch;
    ids->n = 0;
    size_t n = orr_registry_members(sd->srv->registry, p->idx, group, len, ids);
    if (n) {
        dv_flush(d); /* after what came before it */
        orr_payload *m = payload_new(msg, msg_len);
        n = mailbox_post(sd->srv, NULL, ids->ids, n, m);
        payload_unref(m);
    }
    if (ids->cap > 65536) orr_idvec_free(ids); /* one huge group does not pin its array */
    pool_unref(p);
    return n;
}

static void dv_complete(orr_delivery *d, uint64_t conn, const orr_registry_result *r) {
    srv_delivery *sd = of(d);
    orr_worker *w = worker_for(sd, conn);
    if (w) orr_xq_chain_add(&sd->res[w->cw.index], worker_result_msg(conn, r));
}

static void dv_evict(orr_delivery *d, uint64_t conn) {
    srv_delivery *sd = of(d);
    orr_worker *w = worker_for(sd, conn);
    if (!w) return;
    dv_flush(d); /* after what was queued for it */
    worker_post_kill(w, conn);
}

static size_t dv_pool_name(orr_delivery *d, uint32_t idx, char *out, size_t cap) {
    return pools_name_of(of(d)->srv, idx, out, cap);
}

/* A pool this node does not use has no counters here (another node counts). */
static void dv_park_count(orr_delivery *d, const char *pool, size_t pool_len,
                          const orr_park_stats *add, int64_t names) {
    srv_delivery *sd = of(d);
    orr_pool *p = pools_acquire(sd->srv, pool, pool_len, false);
    if (!p) return;
    orr_registry_park_account(sd->srv->registry, p->idx, add, names);
    pool_unref(p);
}

static const orr_delivery_ops ops = {
    .to_conn = dv_to_conn,
    .to_group = dv_to_group,
    .complete = dv_complete,
    .evict = dv_evict,
    .flush = dv_flush,
    .pool_name = dv_pool_name,
    .park_count = dv_park_count,
};

orr_delivery *delivery_new(orr_server *s) {
    srv_delivery *sd = orr_xcalloc(1, sizeof *sd);
    sd->base.ops = &ops;
    sd->srv = s;
    sd->post = orr_xcalloc((size_t)s->n_workers, sizeof *sd->post);
    sd->res = orr_xcalloc((size_t)s->n_workers, sizeof *sd->res);
    return &sd->base;
}

void delivery_free(orr_delivery *d) {
    if (!d) return;
    free(of(d)->post);
    free(of(d)->res);
    orr_idvec_free(&of(d)->scratch);
    free(d);
}
