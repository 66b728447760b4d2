/*
 * The single-node registry backend: the node's table is the whole
 * registry, so every operation is answered by the table at once and
 * nothing waits (backend.h).
 */
#include "registry/backend.h"

#include "common/err.h"

#include <stdlib.h>

static int local_take_name(orr_backend *b, uint32_t pool, const char *name, size_t len,
                           uint64_t conn) {
    return orr_registry_register(b->reg, pool, name, len, conn);
}

static int local_submit(orr_backend *b, const orr_reg_req *rq) {
    (void)b;
    (void)rq;
    return 0; /* the table's answer is the answer */
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
