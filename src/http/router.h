/*
 * Routes gears' websocket patterns. A gear is reached under the path prefix
 * /<gear> on any host, or at host <gear>.<base_domain> without the prefix.
 * Pattern grammar (Antikythera's): segments start with '/', no empty segment,
 * literals, `:param`, and a trailing `*wildcard` matching at least one
 * segment (joined with '/'); matching is on URL-decoded segments; a pattern
 * without a wildcard matches with or without one trailing '/'.
 */
#ifndef ORR_HTTP_ROUTER_H
#define ORR_HTTP_ROUTER_H

#include <stddef.h>

#define ORR_ROUTE_MAX_PARAMS 16

typedef struct orr_router orr_router;

typedef struct orr_route_match {
    const char *gear; /* gear name as registered */
    void *data;       /* what orr_router_add was given */
    size_t n_params;
    struct {
        const char *name;  /* points into the router */
        const char *value; /* URL-decoded, NUL-terminated, in the caller's scratch */
    } params[ORR_ROUTE_MAX_PARAMS];
} orr_route_match;

/* Owned by the caller; free with orr_router_free. Read-only once built, so
 * workers may match concurrently. */
orr_router *orr_router_new(const char *base_domain);
void orr_router_free(orr_router *r);

/* Returns 0, or ORR_EINVAL with a reason in err for a bad pattern or name. */
int orr_router_add(orr_router *r, const char *gear, const char *pattern, void *data, char *err,
                   size_t errlen);

/*
 * Look up host (may carry ":port"; may be NULL) and path (percent-encoded,
 * without query). Decoded parameter values are written into scratch.
 * Returns 0 on a match, ORR_ENOTFOUND if nothing matches, ORR_EINVAL for a
 * path that cannot be decoded (bad escape, or a decoded '/' or NUL inside a
 * segment), ORR_ENOMEM if scratch is too small (path_len +
 * ORR_ROUTE_MAX_PARAMS bytes always suffice).
 */
int orr_router_match(const orr_router *r, const char *host, size_t host_len, const char *path,
                     size_t path_len, char *scratch, size_t scratch_len, orr_route_match *m);

/* 1 if `name` is a valid gear name ([a-z][a-z0-9_]*, at most 32 bytes). */
int orr_gear_name_valid(const char *name);

#endif
