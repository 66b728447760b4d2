/*
 * The registry as gears see it (orr_unique_*, orr_group_*, orr_conn_pool).
 *
 * An operation runs against the node's registry table (src/registry) at
 * once, then goes to the registry backend (registry/backend.h). When the
 * backend answers at once, the result is queued on the worker and handed to
 * the connection's on_registry_result right after the callback that started
 * it returns (conn/ws_conn.c runs them), never inside it; when the backend keeps
 * it, the result comes later through the worker's inbox
 * (the server's mailbox_late_result), in order.
 */
#include "conn/conn.h"
#include "gearapi/gearapi.h"

#include <string.h>

/* ---- results ---- */

static void push_result(conn_worker *w, orr_conn *c, orr_registry_op op, int status, uint64_t count,
                        const char *name, size_t len, uint64_t tag) {
    if (w->n_results == w->cap_results) {
        w->cap_results = w->cap_results ? w->cap_results * 2 : 8;
        w->results = orr_xrealloc(w->results, w->cap_results * sizeof *w->results);
    }
    reg_pending *p = &w->results[w->n_results++];
    p->conn = c->id;
    memcpy(p->name, name, len);
    p->r = (orr_registry_result){
        .op = op, .status = status, .count = count, .name_len = len, .tag = tag};
}

/* An operation of c as the backend sees it (pointers borrowed). status and
 * count: its outcome on this node. */
static orr_reg_req req_of(const orr_conn *c, orr_rq_kind kind, orr_registry_op op, int status,
                          uint64_t count, const char *name, size_t len, uint64_t tag) {
    const conn_route *p = c->route;
    return (orr_reg_req){.kind = kind,
                         .op = op,
                         .status = status,
                         .count = count,
                         .conn = c->id,
                         .reply_to = c->id,
                         .tag = tag,
                         .pool_idx = p->pool_idx,
                         .pool = p->pool,
                         .pool_len = p->pool_len,
                         .name = name,
                         .name_len = len};
}

/* The backend finishes rq: its answer now (to on_registry_result right
 * after the running callback), or later through the worker's inbox
 * (ORR_RQ_KEPT: submit's answer). */
static int finish(conn_worker *w, orr_conn *c, const orr_reg_req *rq) {
    orr_backend *be = w->node->gears->backend;
    int k = be->ops->submit(be, rq);
    if (k == ORR_RQ_KEPT) return k;
    /* Parked: kept for the name's next holder (OK, count 0). */
    int status = k == ORR_RQ_PARKED ? ORR_OK : rq->status;
    push_result(w, c, rq->op, status, k == ORR_RQ_PARKED ? 0 : rq->count, rq->name, rq->name_len,
                rq->tag);
    return k;
}

/* ---- the gear API ---- */

static int may_use(const orr_conn *c, size_t name_len) {
    const conn_worker *w = c->w;
    if (w->cb_conn != c) return ORR_ESTATE;
    if (w->cb_closed || (c->flags & CF_CLOSE_SENT) || c->phase != PHASE_WS) return ORR_ECLOSED;
    if (name_len == 0 || name_len > ORR_NAME_MAX) return ORR_EINVAL;
    return 0;
}

const char *orr_conn_pool(const orr_conn *c) {
    return c->route ? c->route->pool : "";
}

/* An operation the node's table does (unregister, join, leave), then the
 * backend: `kind` when the table took it, else only the table's answer. A
 * join marks the connection as holding registry entries. */
typedef int (*table_fn)(orr_registry *r, uint32_t pool, const char *bytes, size_t len,
                        uint64_t conn);

static int table_op(orr_conn *c, const char *bytes, size_t len, uint64_t tag, table_fn fn,
                    orr_rq_kind kind, orr_registry_op op) {
    int rc = may_use(c, len);
    if (rc) return rc;
    conn_worker *w = c->w;
    rc = fn(w->node->gears->registry, c->route->pool_idx, bytes, len, c->id);
    if (rc == 0 && kind == ORR_RQ_JOIN) c->flags |= CF_REGISTRY;
    orr_reg_req rq = req_of(c, rc == 0 ? kind : ORR_RQ_ANSWER, op, rc, 0, bytes, len, tag);
    finish(w, c, &rq);
    return 0;
}

int orr_unique_register(orr_conn *c, const char *name, size_t len, uint64_t tag) {
    int rc = may_use(c, len);
    if (rc) return rc;
    conn_worker *w = c->w;
    orr_backend *be = w->node->gears->backend;
    rc = be->ops->take_name(be, c->route->pool_idx, name, len, c->id);
    if (rc == ORR_REGISTRY_RESTORING) {
        w->node->gears->restore(w, c, name, len);
        rc = 0;
    }
    if (rc == 0) c->flags |= CF_REGISTRY;
    /* Refused on this node already: nothing to claim beyond it. */
    orr_reg_req rq = req_of(c, rc == 0 ? ORR_RQ_REGISTER : ORR_RQ_ANSWER, ORR_OP_UNIQUE_REGISTER,
                            rc, 0, name, len, tag);
    finish(w, c, &rq);
    return 0;
}

int orr_unique_unregister(orr_conn *c, const char *name, size_t len, uint64_t tag) {
    return table_op(c, name, len, tag, orr_registry_unregister, ORR_RQ_UNREGISTER,
                    ORR_OP_UNIQUE_UNREGISTER);
}

int orr_unique_send(orr_conn *c, const char *name, size_t len, const void *msg, size_t msg_len,
                    uint64_t tag) {
    int rc = may_use(c, len);
    if (rc) return rc;
    conn_worker *w = c->w;
    if ((!msg && msg_len) || msg_len > w->node->cfg->max_message_bytes) return ORR_EINVAL;
    uint64_t to;
    orr_reg_req rq;
    const gear_host *h = w->node->gears;
    if (!c->routed_out && h->local_holder(w, c->route, name, len, &to)) {
        /* Held on this node: delivered without asking the backend. */
        const conn_route *r = c->route;
        orr_payload *m =
            payload_to_name(msg, msg_len, atomic_load_explicit(r->park_ms, memory_order_relaxed),
                            r->pool_idx, name, len);
        rc = h->post(w, to, m) ? 0 : ORR_EAGAIN;
        payload_unref(m);
        rq = req_of(c, ORR_RQ_ANSWER, ORR_OP_UNIQUE_SEND, rc, rc == 0, name, len, tag);
    } else {
        rq = req_of(c, ORR_RQ_SEND, ORR_OP_UNIQUE_SEND, ORR_ENOTFOUND, 0, name, len, tag);
        rq.msg = msg;
        rq.msg_len = msg_len;
    }
    /* A kept send is answered as ORR_OP_ROUTED_SEND (mailbox_late_result counts it back). */
    if (finish(w, c, &rq) == ORR_RQ_KEPT && rq.kind == ORR_RQ_SEND && c->routed_out < UINT16_MAX)
        c->routed_out++;
    return 0;
}

int orr_group_join(orr_conn *c, const char *group, size_t len, uint64_t tag) {
    return table_op(c, group, len, tag, orr_registry_join, ORR_RQ_JOIN, ORR_OP_GROUP_JOIN);
}

int orr_group_leave(orr_conn *c, const char *group, size_t len, uint64_t tag) {
    return table_op(c, group, len, tag, orr_registry_leave, ORR_RQ_LEAVE, ORR_OP_GROUP_LEAVE);
}

int orr_group_publish(orr_conn *c, const char *group, size_t len, const void *msg, size_t msg_len,
                      uint64_t tag) {
    int rc = may_use(c, len);
    if (rc) return rc;
    conn_worker *w = c->w;
    if ((!msg && msg_len) || msg_len > w->node->cfg->max_message_bytes) return ORR_EINVAL;
    /* Members here have it now; a cluster tells the others and counts all. */
    size_t n = w->node->gears->publish(w, c->route, group, len, msg, msg_len);
    orr_reg_req rq = req_of(c, ORR_RQ_PUBLISH, ORR_OP_GROUP_PUBLISH, 0, n, group, len, tag);
    rq.msg = msg;
    rq.msg_len = msg_len;
    rq.local_count = n;
    finish(w, c, &rq);
    return 0;
}
