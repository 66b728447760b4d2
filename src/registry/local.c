/*
 * The single-node registry backend: the node's table is the whole
 * registry, so every operation is answered by the table at once and
 * nothing waits (backend.h). Parked names live in the table too
 * (registry.h): a send nobody holds may find one.
 */
#include "registry/backend.h"

#include "common/err.h"

#include <stdlib.h>

static int local_take_name(orr_backend *b, uint32_t pool, const char *name, size_t len,
                           uint64_t conn) {
    return orr_registry_register(b->reg, pool, name, len, conn);
}

/* The table's answer is the answer, except for a send to a name nobody
 * holds: a parked one keeps the message. */
static int local_submit(orr_backend *b, const orr_reg_req *rq) {
    if (rq->kind == ORR_RQ_SEND && rq->pool_idx != ORR_RQ_NO_POOL &&
        orr_registry_park_send(b->reg, rq->pool_idx, rq->name, rq->name_len, rq->msg, rq->msg_len))
        return ORR_RQ_PARKED;
    return 0;
}

static bool local_holder_valid(orr_backend *b, int64_t now_ms) {
    (void)b;
    (void)now_ms;
    return true;
}

static bool local_ready(orr_backend *b, char *why, size_t len) {
    (void)b;
    (void)why;
    (void)len;
    return true;
}

static void local_metrics(orr_backend *b, void (*emit)(void *arg, const char *line), void *arg) {
    (void)b;
    (void)emit;
    (void)arg;
}

static void local_draining(orr_backend *b) {
    (void)b;
}

static void local_stop(orr_backend *b) {
    free(b);
}

static const orr_backend_ops local_ops = {
    .name = "local",
    .take_name = local_take_name,
    .submit = local_submit,
    .holder_valid = local_holder_valid,
    .ready = local_ready,
    .metrics = local_metrics,
    .draining = local_draining,
    .stop = local_stop,
};

orr_backend *orr_local_backend_new(orr_registry *reg) {
    orr_backend *b = orr_xcalloc(1, sizeof *b);
    b->ops = &local_ops;
    b->reg = reg;
    return b;
}
