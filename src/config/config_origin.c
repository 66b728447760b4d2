/*
 * The Origin keys of the config file, at the top level and per pool:
 * allowed_origins (a list of exact origins and *.example.com patterns,
 * kept normalised, one per line) and require_origin.
 */
#include "config/config.h"

#include "common/err.h"
#include "config/config_internal.h"
#include "http/origin.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One entry, normalised into out: its length, or -1 after the error. */
static long origin_entry(orr__config_ctx *ctx, const char *key, size_t i, json_t *e, char *out) {
    char g[80];
    if (!json_is_string(e))
        return orr__config_fail_at(ctx, key, 1, "entry %zu: expected a string, got %s", i + 1,
                                   orr__config_got(e, g, sizeof g));
    const char *s = json_string_value(e);
    size_t n = json_string_length(e);
    if (n >= 2 && s[0] == '*' && s[1] == '.') {
        if (n >= ORR_ORIGIN_MAX || !orr_origin_pattern_valid(s, n))
            return orr__config_fail_at(
                ctx, key, 1, "entry %zu: \"%.80s\" is not a pattern *.<host name>", i + 1, s);
        for (size_t k = 0; k < n; k++)
            out[k] = s[k] >= 'A' && s[k] <= 'Z' ? (char)(s[k] - 'A' + 'a') : s[k];
        return (long)n;
    }
    long len = orr_origin_normalize(s, n, out, ORR_ORIGIN_MAX);
    if (len < 0)
        return orr__config_fail_at(ctx, key, 1,
                                   "entry %zu: \"%.80s\" is not an origin scheme://host[:port] (no "
                                   "path, no trailing /) or a pattern *.<host name>",
                                   i + 1, s);
    return len;
}

/* ["https://example.com", "*.example.com", ...] into a malloc'd string of
 * normalised lines: 0, or -1 after the error. */
static int load_list(orr__config_ctx *ctx, const char *key, json_t *v, char **out) {
    char g[80];
    if (!json_is_array(v))
        return orr__config_fail_at(ctx, key, 1,
                                   "expected a list of origins [\"https://host[:port]\", "
                                   "\"*.example.com\", ...], got %s",
                                   orr__config_got(v, g, sizeof g));
    size_t n = json_array_size(v), at = 0;
    char *list = orr_xmalloc(n * (ORR_ORIGIN_MAX + 1) + 1);
    for (size_t i = 0; i < n; i++) {
        long len = origin_entry(ctx, key, i, json_array_get(v, i), list + at);
        if (len < 0) {
            free(list);
            return -1;
        }
        at += (size_t)len;
        list[at++] = '\n';
    }
    list[at ? at - 1 : 0] = '\0';
    *out = list;
    return 0;
}

int orr__config_load_origins(orr__config_ctx *ctx, const orr__config_key *k, json_t *v,
                             void *base) {
    char **slot = (char **)((char *)base + k->offset);
    char *list = NULL;
    if (load_list(ctx, k->name, v, &list) < 0) return -1;
    free(*slot);
    *slot = list;
    return 0;
}

void orr__config_show_origins(const orr__config_key *k, const void *base, char *buf, size_t n) {
    const char *list = *(char *const *)((const char *)base + k->offset);
    snprintf(buf, n, "%s", list ? "[...]" : "none");
}

/* true or false, into a bool (top level) or an int8_t (a pool, its key's
 * min -1: -1 unset). */
int orr__config_load_flag(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base) {
    char g[80];
    if (!json_is_boolean(v))
        return orr__config_fail_at(ctx, k->name, 1, "expected true or false, got %s",
                                   orr__config_got(v, g, sizeof g));
    char *field = (char *)base + k->offset;
    if (k->min < 0)
        *(int8_t *)field = json_is_true(v) ? 1 : 0;
    else
        *(bool *)field = json_is_true(v);
    return 0;
}

void orr__config_show_flag(const orr__config_key *k, const void *base, char *buf, size_t n) {
    const char *field = (const char *)base + k->offset;
    int v = k->min < 0 ? *(const int8_t *)field : *(const bool *)field;
    snprintf(buf, n, "%s", v < 0 ? "top-level" : v ? "true" : "false");
}

void orr_config_origin_policy(const orr_config *c, const char *pool, const char **list,
                              bool *require) {
    const orr_pool_config *p = orr_config_pool_find(c, pool);
    *list = p && p->allowed_origins ? p->allowed_origins : c->allowed_origins;
    *require = p && p->require_origin >= 0 ? p->require_origin : c->require_origin;
}
