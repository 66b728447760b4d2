/*
 * The router against paths and hosts from the network, and against patterns
 * it must either compile or refuse. Input: pattern '\n' host '\n' path (a
 * missing part is absent: no extra pattern, no Host). Host and path are
 * copied to exact-size allocations so that ASan sees any read past the end.
 */
#include "http/router.h"

#include "common/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
    if (!cond) abort();
}

static const char *const fixed[][2] = {
    {"echo", "/ws"},          {"chat", "/"},          {"chat", "/room/:id"},
    {"chat", "/files/*path"}, {"chat", "/x/:a/y/*b"}, {"chat", "/caf\xc3\xa9"},
};

static const char *next_part(const char **p, const char *end, size_t *n) {
    if (*p == NULL) return NULL;
    const char *start = *p;
    const char *nl = memchr(start, '\n', (size_t)(end - start));
    *n = (size_t)((nl ? nl : end) - start);
    *p = nl ? nl + 1 : NULL;
    return start;
}

static void match_one(const orr_router *r, const char *host, size_t host_len, const char *path,
                      size_t path_len) {
    char *h = host ? malloc(host_len ? host_len : 1) : NULL;
    if (h) memcpy(h, host, host_len);
    char *p = malloc(path_len ? path_len : 1);
    memcpy(p, path, path_len);

    /* The bound the header promises. */
    size_t scratch_len = path_len + ORR_ROUTE_MAX_PARAMS;
    char *scratch = malloc(scratch_len);
    orr_route_match m;
    int rc = orr_router_match(r, h, h ? host_len : 0, p, path_len, scratch, scratch_len, &m);
    check(rc == 0 || rc == ORR_ENOTFOUND || rc == ORR_EINVAL);
    if (rc == 0) {
        check(m.gear != NULL && orr_gear_name_valid(m.gear));
        check(m.n_params <= ORR_ROUTE_MAX_PARAMS);
        for (size_t i = 0; i < m.n_params; i++) {
            const char *v = m.params[i].value;
            check(v >= scratch && v < scratch + scratch_len);
            size_t vn = strnlen(v, (size_t)(scratch + scratch_len - v));
            check(vn > 0 && v + vn < scratch + scratch_len); /* non-empty, NUL-terminated */
            check(m.params[i].name[0] != '\0');
        }
    }
    free(scratch);
    free(p);
    free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *in = (const char *)data, *end = in + size, *cur = in;
    size_t pn = 0, hn = 0, n = 0;
    const char *pattern = next_part(&cur, end, &pn);
    const char *host = next_part(&cur, end, &hn);
    const char *path = next_part(&cur, end, &n);
    if (!path) {
        /* Fewer parts: the whole input is a path on no particular host. */
        path = in;
        n = size;
        pattern = host = NULL;
    }

    orr_router *r = orr_router_new("localhost");
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        check(orr_router_add(r, fixed[i][0], fixed[i][1], NULL, NULL, 0) == 0);
    if (pattern) {
        char *pat = malloc(pn + 1);
        memcpy(pat, pattern, pn);
        pat[pn] = '\0';
        char err[64];
        int rc = orr_router_add(r, "f", pat, NULL, err, sizeof err);
        check(rc == 0 || rc == ORR_EINVAL);
        free(pat);
    }
    match_one(r, host, hn, path, n);
    orr_router_free(r);
    return 0;
}
