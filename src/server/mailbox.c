/*
 * The mailboxes that carry messages to connections, and registry results
 * that come back later (the gear API itself is in src/gearapi).
 *
 * An operation runs against the node's registry table (src/registry) at
 * once; its result is queued on the worker and handed to the connection's
 * on_registry_result right after the callback that started it returns
 * (mailbox_run_results), never inside it, unless the registry backend
 * (registry/backend.h) keeps the operation: then its result comes later,
 * through the worker's inbox (mailbox_late_result), in order.
 *
 * A message becomes one refcounted payload (conn/payload.c) whose text
 * frame header is encoded once. Its recipients are grouped by worker: one inbox entry per
 * worker, whatever the number of members there; a worker's own
 * connections get theirs through its local list, without a lock.
 */
#include "common/log.h"
#include "conn/conn.h"
#include "server/internal.h"
#include "server/worker.h"

#include <stdlib.h>
#include <string.h>

/* ---- posting ---- */

size_t mailbox_post(orr_server *s, orr_worker *from, const uint64_t *ids, size_t n,
                    orr_payload *m) {
    if (n == 1) {
        unsigned wi = (unsigned)(ids[0] >> 56);
        return wi < (unsigned)s->n_workers && worker_post_deliver(&s->workers[wi], from, m, ids, 1);
    }
    /* Bucketed by worker (the id's top byte) in one pass, keeping their
     * order: the same group gives the same arrays each time, which lets a
     * worker batch successive publications per connection. */
    size_t count[256] = {0}, at[256];
    for (size_t i = 0; i < n; i++)
        count[ids[i] >> 56]++;
    size_t queued = 0;
    for (int wi = 0; wi < s->n_workers; wi++) {
        if (count[wi] == n) /* all on one worker */
            return worker_post_deliver(&s->workers[wi], from, m, ids, n) ? n : 0;
    }
    uint64_t *v = orr_xmalloc(n * sizeof *v);
    size_t off = 0;
    for (int wi = 0; wi < 256; wi++) {
        at[wi] = off;
        off += count[wi];
    }
    for (size_t i = 0; i < n; i++)
        v[at[ids[i] >> 56]++] = ids[i];
    off = 0;
    for (int wi = 0; wi < 256; wi++) {
        if (count[wi] && wi < s->n_workers &&
            worker_post_deliver(&s->workers[wi], from, m, v + off, count[wi]))
            queued += count[wi];
        off += count[wi];
    }
    free(v);
    return queued;
}

/* Publish to a group of a pool from any connection (gear or push API):
 * the number of members it went to. */
size_t mailbox_publish(orr_worker *w, orr_pool *pool, const char *group, size_t len,
                       const void *msg, size_t msg_len) {
    orr_idvec *ids = &w->scratch_ids;
    ids->n = 0;
    size_t n = orr_registry_members(w->srv->registry, pool->idx, group, len, ids);
    if (n) {
        orr_payload *m = payload_new(msg, msg_len);
        n = mailbox_post(w->srv, w, ids->ids, n, m);
        payload_unref(m);
    }
    if (ids->cap > 65536) orr_idvec_free(ids); /* one huge group does not pin its array */
    return n;
}

bool mailbox_local_holder(orr_worker *w, orr_pool *pool, const char *name, size_t len,
                          uint64_t *to) {
    if (orr_registry_lookup(w->srv->registry, pool->idx, name, len, to) != 0) return false;
    /* A cluster: only while this node's lease holds (after a lapse another
     * node may hold the name now). */
    orr_backend *be = w->srv->backend;
    return be->ops->holder_valid(be, w->loop.now_ms);
}

/* Send to a unique name of a pool: true if someone holds it. */
bool mailbox_send(orr_worker *w, orr_pool *pool, const char *name, size_t len, const void *msg,
                  size_t msg_len) {
    uint64_t to;
    if (!mailbox_local_holder(w, pool, name, len, &to)) return false;
    orr_payload *m =
        payload_to_name(msg, msg_len, atomic_load_explicit(&pool->park_ms, memory_order_relaxed),
                        pool->idx, name, len);
    bool ok = mailbox_post(w->srv, w, &to, 1, m) == 1;
    payload_unref(m);
    return ok;
}

void mailbox_late_result(orr_worker *w, orr_conn *c, const orr_registry_result *r) {
    orr_registry_result routed;
    if (r->op == ORR_OP_ROUTED_SEND) { /* one of its kept sends: a send to the gear */
        if (c->routed_out) c->routed_out--;
        routed = *r;
        routed.op = ORR_OP_UNIQUE_SEND;
        r = &routed;
    }
    if (r->op == ORR_OP_DRAIN_PARKED) { /* its names are parked: now its 1001 */
        if (c->phase != PHASE_WS || (c->flags & (CF_CLOSE_SENT | CF_TERMINATED))) return;
        conn_drain(&w->cw, c);
        return;
    }
    if (c->phase == PHASE_HTTP && (c->flags & CF_HTTP_WAIT)) {
        push_answer(w, c, r);
        return;
    }
    if (c->phase != PHASE_WS || (c->flags & (CF_CLOSE_SENT | CF_TERMINATED))) return;
    if (r->op == ORR_OP_UNIQUE_REGISTER) {
        /* The backend's answer to a claim: confirmed, or it goes (another
         * node holds the name; our own holder, if any, kept it). */
        orr_registry *reg = w->srv->registry;
        uint32_t pool = c->route->pool_idx;
        uint64_t holder;
        int64_t since;
        if (r->status == ORR_OK)
            orr_registry_confirm(reg, pool, r->name, r->name_len, c->id);
        else if (orr_registry_holder_since(reg, pool, r->name, r->name_len, &holder, &since) == 0 &&
                 holder == c->id)
            orr_registry_unregister(reg, pool, r->name, r->name_len, c->id);
    }
    /* The caller may have corked c for a batch of its results. */
    bool own = w->cw.cork_conn != c;
    if (own) out_cork(&w->cw, c);
    ws_run_result(&w->cw, c, r);
    if (own) out_uncork(&w->cw);
}

/* ---- parking (registry/registry.h) ---- */

/* c's pool parks: its limits. */
static bool parks(const orr_conn *c, orr_park_limits *lim) {
    return c->route && pool_park_limits(route_of(c->route)->pool, lim);
}

bool mailbox_park_for_drain(orr_worker *w, orr_conn *c) {
    orr_park_limits lim;
    if (!(c->flags & CF_REGISTRY) || !parks(c, &lim)) return false;
    orr_backend *be = w->srv->backend;
    if (!be->ops->parks_shared) {
        orr_registry_park_names(w->srv->registry, c->id, &lim, w->loop.now_ms);
        return false;
    }
    /* Its names park in the backend; the 1001 goes once that is done and what
     * was on its way to c has reached this worker (ORR_OP_DRAIN_PARKED). Its
     * table entries go too: a send from this node now goes where the name is. */
    orr_registry_unregister_names(w->srv->registry, c->id);
    orr_reg_req rq = {.kind = ORR_RQ_PARK,
                      .op = ORR_OP_DRAIN_PARKED,
                      .conn = c->id,
                      .reply_to = c->id,
                      .park = lim};
    be->ops->submit(be, &rq);
    return true;
}

/* One orphan that knows its name (payload_new_to): back to that name. */
static void orphan_named(orr_worker *w, uint64_t id, const orr_park_limits *lim,
                         const orr_payload *p, uint32_t pool, const char *name, size_t len) {
    uint64_t holder;
    int k = orr_registry_orphan_to(w->srv->registry, id, lim, w->loop.now_ms, pool, name, len,
                                   p->bytes + PAYLOAD_HDR_ROOM, p->len, &holder);
    /* Restored to another connection meanwhile: it gets it, late. */
    if (k == ORR_ORPHAN_HOLDER) mailbox_post(w->srv, w, &holder, 1, (orr_payload *)p);
}

void mailbox_orphans(orr_worker *w, uint64_t id, orr_conn *c, const orr_payload *const *ps,
                     size_t n) {
    orr_park_limits lim;
    if (c && !parks(c, &lim)) return;
    orr_backend *be = w->srv->backend;
    for (size_t i = 0; i < n; i++) {
        if (!ps[i]->to_name) continue;
        const void *msg = ps[i]->bytes + PAYLOAD_HDR_ROOM;
        uint32_t pool;
        const char *name;
        size_t len = payload_name(ps[i], &pool, &name);
        if (be->ops->parks_shared) {
            orr_reg_req rq = {.kind = ORR_RQ_ORPHAN,
                              .conn = id,
                              .msg = msg,
                              .msg_len = ps[i]->len,
                              .park = c ? lim : (orr_park_limits){0}};
            /* Its name, when it came from this node: the pool's name from its index. */
            char pn[ORR_POOL_NAME_MAX];
            if (len && (rq.pool_len = pools_name_of(w->srv, pool, pn, sizeof pn))) {
                rq.pool = pn;
                rq.name = name;
                rq.name_len = len;
            }
            be->ops->submit(be, &rq);
        } else if (len) {
            orphan_named(w, id, c ? &lim : NULL, ps[i], pool, name, len);
        } else {
            orr_registry_park_orphan(w->srv->registry, id, c ? &lim : NULL, w->loop.now_ms, msg,
                                     ps[i]->len);
        }
    }
}

static bool open_for_messages(const orr_conn *c) {
    return c && c->phase == PHASE_WS && !(c->flags & (CF_CLOSE_SENT | CF_TERMINATED));
}

/* Hands kept messages to c one at a time: if c closes on the way, the rest
 * are parked again, first (they were sent before anything kept since). */
static void deliver_kept(orr_worker *w, uint64_t id, uint32_t pool, const char *name, size_t len,
                         orr_park_msg *ms) {
    for (orr_park_msg *m = ms; m; m = m->next) {
        orr_conn *c = orr_worker_find(w, id);
        orr_payload *p = payload_new_to(m->bytes, m->len, pool, name, len);
        const orr_payload *one = p;
        if (!c || !ws_deliver_server_messages(&w->cw, c, &one, 1))
            mailbox_orphans(w, id, c, &one, 1);
        payload_unref(p);
    }
}

void mailbox_restore(orr_worker *w, uint64_t id, uint32_t pool, const char *name, size_t len) {
    orr_park_msg *ms;
    while (open_for_messages(orr_worker_find(w, id)) &&
           orr_registry_restore_take(w->srv->registry, pool, name, len, id, &ms) > 0) {
        deliver_kept(w, id, pool, name, len, ms);
        orr_registry_msgs_free(ms);
    }
    /* Not open any more: its end parks the name again, messages kept. */
}

void mailbox_conn_ended(orr_worker *w, orr_conn *c) {
    if (c->flags & CF_REGISTRY) {
        /* In a pool that parks, its names keep their messages for park_ms:
         * in the node's table, or in the backend's (parks_shared). */
        orr_backend *be = w->srv->backend;
        orr_reg_req rq = {.kind = ORR_RQ_GONE, .conn = c->id};
        orr_park_limits lim;
        bool park = parks(c, &lim);
        if (park && !be->ops->parks_shared)
            orr_registry_conn_gone_park(w->srv->registry, c->id, &lim, w->loop.now_ms);
        else
            orr_registry_conn_gone(w->srv->registry, c->id);
        if (park && be->ops->parks_shared) rq.park = lim;
        c->flags &= (uint16_t)~CF_REGISTRY;
        be->ops->submit(be, &rq);
    }
    if (c->route) pool_release(route_of(c->route)->pool);
}

/* ---- the gear API's view of the node (gearapi/gearapi.h) ---- */

static bool gh_local_holder(conn_worker *cw, const conn_route *r, const char *name, size_t len,
                            uint64_t *to) {
    return mailbox_local_holder(worker_of(cw), route_of(r)->pool, name, len, to);
}

static bool gh_post(conn_worker *cw, uint64_t to, orr_payload *m) {
    orr_worker *w = worker_of(cw);
    return mailbox_post(w->srv, w, &to, 1, m) == 1;
}

static void gh_restore(conn_worker *cw, orr_conn *c, const char *name, size_t len) {
    worker_post_restore(worker_of(cw), c->id, c->route->pool_idx, name, len);
}

static size_t gh_publish(conn_worker *cw, const conn_route *r, const char *group, size_t len,
                         const void *msg, size_t msg_len) {
    return mailbox_publish(worker_of(cw), route_of(r)->pool, group, len, msg, msg_len);
}

void mailbox_gear_host(orr_server *s, gear_host *h) {
    *h = (gear_host){.registry = s->registry,
                     .backend = s->backend,
                     .local_holder = gh_local_holder,
                     .post = gh_post,
                     .publish = gh_publish,
                     .restore = gh_restore};
}
