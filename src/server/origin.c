/*
 * The Origin allowlist (RFC 6455 section 10.2): a websocket handshake from
 * a page of another site carries its Origin, and a pool that lists the
 * origins it serves refuses the others with 403 before its gear's connect
 * runs. Requests without Origin (clients that are not browsers) pass
 * unless the pool requires one. The lists live in a copy of the config
 * that SIGHUP replaces (origin_lock); a handshake reads it under the read
 * lock.
 */
#include "http/origin.h"
#include "common/log.h"
#include "server/internal.h"

#include <stdio.h>
#include <string.h>

void origin_init(orr_server *s) {
    pthread_rwlock_init(&s->origin_lock, NULL);
    orr_config_copy(&s->origin_cfg, &s->cfg);
}

void origin_set(orr_server *s, const orr_config *next) {
    orr_config fresh, old;
    orr_config_copy(&fresh, next);
    pthread_rwlock_wrlock(&s->origin_lock);
    old = s->origin_cfg;
    s->origin_cfg = fresh;
    pthread_rwlock_unlock(&s->origin_lock);
    orr_config_free(&old);
}

void origin_free(orr_server *s) {
    orr_config_free(&s->origin_cfg);
    pthread_rwlock_destroy(&s->origin_lock);
}

/* The header's bytes for a log line: printable ASCII, the rest '?', cut. */
static void printable(const orr_span *v, char *out, size_t cap) {
    size_t n = v->n < cap - 1 ? v->n : cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = v->p[i] >= 0x20 && v->p[i] < 0x7f ? v->p[i] : '?';
    out[n] = '\0';
}

/* Whether an Origin header (NULL: none; count: how many) may open a
 * websocket under (list, require); why says which rule refused it. */
static bool allowed(const orr_span *o, size_t count, const char *list, bool require,
                    const char **why) {
    if (count > 1) return *why = "more than one Origin", false;
    if (!o) return *why = "no Origin, and require_origin is true", !require;
    if (!list) return true;
    char norm[ORR_ORIGIN_MAX];
    long n = orr_origin_normalize(o->p, o->n, norm, sizeof norm);
    if (n < 0) return *why = "not an origin", false;
    *why = "not in allowed_origins";
    return orr_origin_allowed(list, norm, (size_t)n);
}

bool origin_check(orr_server *s, const orr_http_request *req, const char *pool, const char *ctx) {
    const orr_span *o = orr_http_header_get(req, "origin");
    size_t count = orr_http_header_count(req, "origin");
    const char *list, *why = "";
    bool require;
    pthread_rwlock_rdlock(&s->origin_lock);
    orr_config_origin_policy(&s->origin_cfg, pool, &list, &require);
    bool ok = (!list && !require && count <= 1) || allowed(o, count, list, require, &why);
    pthread_rwlock_unlock(&s->origin_lock);
    if (!ok) {
        char shown[160] = "";
        if (o) printable(o, shown, sizeof shown);
        orr_log(ORR_LOG_WARN, ctx, "origin %s%s%s refused for pool %s (%s): 403", o ? "\"" : "",
                o ? shown : "(none)", o ? "\"" : "", pool, why);
    }
    return ok;
}
