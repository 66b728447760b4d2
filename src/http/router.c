/*
 * The router: gears and their compiled patterns, built once at start and
 * only read afterwards, so matching takes no lock and allocates nothing.
 *
 * A path is checked once for escapes it cannot decode, then matched against
 * patterns while still encoded: literals are compared by decoding on the fly,
 * and only the parameters of the route that matches are decoded into the
 * caller's scratch.
 */
#include "http/router.h"

#include "common/err.h"
#include "http/request.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEAR_NAME_MAX 32

typedef enum { SEG_LITERAL, SEG_PARAM, SEG_WILDCARD } seg_kind;

typedef struct seg {
    seg_kind kind;
    const char *text; /* literal, or parameter name; NUL-terminated in route.buf */
    size_t len;
} seg;

typedef struct route {
    char *buf; /* the pattern with each '/' turned into a NUL */
    seg *segs;
    size_t n_segs;
    void *data;
} route;

typedef struct gear {
    char name[GEAR_NAME_MAX + 1];
    size_t name_len;
    route *routes;
    size_t n_routes;
} gear;

struct orr_router {
    char *base; /* lower-case, without a trailing dot; "" disables host routing */
    size_t base_len;
    gear *gears;
    size_t n_gears;
};

static char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

orr_router *orr_router_new(const char *base_domain) {
    orr_router *r = orr_xcalloc(1, sizeof *r);
    r->base = orr_xstrdup(base_domain ? base_domain : "");
    r->base_len = strlen(r->base);
    if (r->base_len && r->base[r->base_len - 1] == '.') r->base[--r->base_len] = '\0';
    for (size_t i = 0; i < r->base_len; i++)
        r->base[i] = lower(r->base[i]);
    return r;
}

void orr_router_free(orr_router *r) {
    if (!r) return;
    for (size_t g = 0; g < r->n_gears; g++) {
        for (size_t i = 0; i < r->gears[g].n_routes; i++) {
            free(r->gears[g].routes[i].buf);
            free(r->gears[g].routes[i].segs);
        }
        free(r->gears[g].routes);
    }
    free(r->gears);
    free(r->base);
    free(r);
}

int orr_gear_name_valid(const char *name) {
    if (!name || !(name[0] >= 'a' && name[0] <= 'z')) return 0;
    size_t n = 1;
    for (; name[n]; n++) {
        char c = name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') || n >= GEAR_NAME_MAX)
            return 0;
    }
    return 1;
}

/* ---- patterns ----------------------------------------------------------- */

static bool param_name_valid(const char *s, size_t n) {
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Literals are RFC 3986 pchars without percent-escapes (a pattern names the
 * decoded segment, so an escape in it would be ambiguous), plus bytes of
 * 0x80 and up so that a UTF-8 literal matches its escaped form. Dot segments
 * are refused because clients resolve them before sending. */
static bool literal_valid(const char *s, size_t n) {
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (unsigned char)c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || (c != '\0' && strchr("-._~!$&'()*+,;=:@", c) != NULL);
        if (!ok) return false;
    }
    return true;
}

/* Parse and check `pattern` into rt (rt->buf already holds its copy). */
static int compile(route *rt, const char *pattern, char *err, size_t errlen) {
    if (pattern[0] != '/')
        return orr_errf(err, errlen, ORR_EINVAL, "pattern \"%s\": must start with '/'", pattern);
    size_t n = strlen(pattern);
    if (n == 1) return 0; /* "/": the gear's root, no segments */

    size_t max_segs = 0;
    for (size_t i = 0; i < n; i++)
        max_segs += pattern[i] == '/';
    rt->segs = orr_xcalloc(max_segs, sizeof *rt->segs);

    size_t n_params = 0;
    for (size_t i = 0; i < n;) {
        size_t start = i + 1, end = start;
        while (end < n && pattern[end] != '/')
            end++;
        rt->buf[i] = '\0';
        const char *s = rt->buf + start;
        size_t len = end - start;
        if (len == 0)
            return orr_errf(err, errlen, ORR_EINVAL, "pattern \"%s\": empty segment", pattern);
        if (rt->n_segs && rt->segs[rt->n_segs - 1].kind == SEG_WILDCARD)
            return orr_errf(err, errlen, ORR_EINVAL, "pattern \"%s\": '*' must be the last segment",
                            pattern);

        seg *sg = &rt->segs[rt->n_segs++];
        if (s[0] == ':' || s[0] == '*') {
            sg->kind = s[0] == ':' ? SEG_PARAM : SEG_WILDCARD;
            sg->text = s + 1;
            sg->len = len - 1;
            if (!param_name_valid(sg->text, sg->len))
                return orr_errf(err, errlen, ORR_EINVAL,
                                "pattern \"%s\": parameter names are [a-z_][a-z0-9_]*", pattern);
            for (size_t j = 0; j + 1 < rt->n_segs; j++)
                if (rt->segs[j].kind != SEG_LITERAL && rt->segs[j].len == sg->len &&
                    memcmp(rt->segs[j].text, sg->text, sg->len) == 0)
                    return orr_errf(err, errlen, ORR_EINVAL,
                                    "pattern \"%s\": parameter \"%.*s\" appears twice", pattern,
                                    (int)sg->len, sg->text);
            if (++n_params > ORR_ROUTE_MAX_PARAMS)
                return orr_errf(err, errlen, ORR_EINVAL, "pattern \"%s\": more than %d parameters",
                                pattern, ORR_ROUTE_MAX_PARAMS);
        } else {
            sg->kind = SEG_LITERAL;
            sg->text = s;
            sg->len = len;
            if (!literal_valid(s, len))
                return orr_errf(err, errlen, ORR_EINVAL,
                                "pattern \"%s\": bad literal segment \"%.*s\"", pattern, (int)len,
                                s);
        }
        i = end;
    }
    return 0;
}

static gear *find_gear(const orr_router *r, const char *name, size_t n, bool nocase) {
    for (size_t g = 0; g < r->n_gears; g++) {
        gear *ge = &r->gears[g];
        if (ge->name_len != n) continue;
        size_t i = 0;
        while (i < n && (nocase ? lower(name[i]) : name[i]) == ge->name[i])
            i++;
        if (i == n) return ge;
    }
    return NULL;
}

int orr_router_add(orr_router *r, const char *gear_name, const char *pattern, void *data, char *err,
                   size_t errlen) {
    if (!orr_gear_name_valid(gear_name))
        return orr_errf(err, errlen, ORR_EINVAL,
                        "gear name \"%s\": must be [a-z][a-z0-9_]*, at most %d bytes",
                        gear_name ? gear_name : "(null)", GEAR_NAME_MAX);
    if (!pattern) return orr_errf(err, errlen, ORR_EINVAL, "gear %s: no pattern", gear_name);

    route rt = {.buf = orr_xstrdup(pattern), .data = data};
    int rc = compile(&rt, pattern, err, errlen);
    if (rc) {
        free(rt.buf);
        free(rt.segs);
        return rc;
    }

    gear *ge = find_gear(r, gear_name, strlen(gear_name), false);
    if (!ge) {
        r->gears = orr_xrealloc(r->gears, (r->n_gears + 1) * sizeof *r->gears);
        ge = &r->gears[r->n_gears++];
        memset(ge, 0, sizeof *ge);
        ge->name_len = strlen(gear_name);
        memcpy(ge->name, gear_name, ge->name_len + 1);
    }
    ge->routes = orr_xrealloc(ge->routes, (ge->n_routes + 1) * sizeof *ge->routes);
    ge->routes[ge->n_routes++] = rt;
    return 0;
}

/* ---- matching ----------------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = lower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Every escape decodes, and no segment decodes to a '/' or a NUL (which
 * would let "%2F" forge a segment boundary or cut a C string short). */
static bool path_decodable(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\0') return false;
        if (p[i] != '%') continue;
        if (n - i < 3) return false;
        int h = hexval(p[i + 1]), l = hexval(p[i + 2]);
        if (h < 0 || l < 0) return false;
        int c = h << 4 | l;
        if (c == '/' || c == 0) return false;
        i += 2;
    }
    return true;
}

/* Decoded byte at enc[*i], advancing *i past it; the path is known to be
 * decodable. */
static char decode_next(const char *enc, size_t *i) {
    char c = enc[*i];
    if (c == '%') {
        c = (char)(hexval(enc[*i + 1]) << 4 | hexval(enc[*i + 2]));
        *i += 3;
    } else {
        *i += 1;
    }
    return c;
}

/* Does the encoded segment decode to exactly lit[0..n)? */
static bool seg_equals(const char *enc, size_t enc_len, const char *lit, size_t n) {
    size_t i = 0, j = 0;
    while (i < enc_len && j < n)
        if (decode_next(enc, &i) != lit[j++]) return false;
    return i == enc_len && j == n;
}

/* A route either matches or not; only then are its parameters decoded, so a
 * route that fails late costs no scratch. With out == NULL nothing is
 * written; otherwise parameters go into scratch and m. Returns 1 on a match,
 * 0 if none, ORR_ENOMEM when the values do not fit. */
static int match_route(const route *rt, const char *body, size_t body_len, bool trailing,
                       char *scratch, size_t scratch_len, orr_route_match *out) {
    size_t c = 0, used = 0;
    if (out) out->n_params = 0;
    if (trailing && rt->n_segs && rt->segs[rt->n_segs - 1].kind == SEG_WILDCARD)
        return 0; /* the optional trailing '/' is only for routes without '*' */

    for (size_t k = 0; k < rt->n_segs; k++) {
        const seg *sg = &rt->segs[k];
        if (c >= body_len) return 0;
        size_t start = c + 1, end = start;
        if (sg->kind == SEG_WILDCARD) {
            end = body_len;
            /* At least one segment, and none of them empty. */
            if (start == end || body[end - 1] == '/') return 0;
            for (size_t i = start; i + 1 < end; i++)
                if (body[i] == '/' && body[i + 1] == '/') return 0;
        } else {
            while (end < body_len && body[end] != '/')
                end++;
            if (start == end) return 0;
        }
        if (sg->kind == SEG_LITERAL) {
            if (!seg_equals(body + start, end - start, sg->text, sg->len)) return 0;
        } else if (out) {
            /* Decoding never lengthens, so the encoded length bounds it. */
            if (scratch_len - used < end - start + 1) return ORR_ENOMEM;
            long dn = orr_url_decode(body + start, end - start, scratch + used, false);
            out->params[out->n_params].name = sg->text;
            out->params[out->n_params].value = scratch + used;
            out->n_params++;
            used += (size_t)dn;
            scratch[used++] = '\0';
        }
        c = end;
    }
    return c == body_len;
}

/* The gear named by Host "<gear>.<base_domain>[:port]", if any. */
static const gear *gear_by_host(const orr_router *r, const char *host, size_t n) {
    if (!host || n == 0 || r->base_len == 0) return NULL;
    if (host[0] == '[') return NULL; /* an IPv6 literal names no gear */
    const char *colon = memchr(host, ':', n);
    if (colon) n = (size_t)(colon - host);
    if (n && host[n - 1] == '.') n--; /* the absolute form "echo.localhost." */
    if (n < r->base_len + 2 || host[n - r->base_len - 1] != '.') return NULL;
    const char *suffix = host + n - r->base_len;
    for (size_t i = 0; i < r->base_len; i++)
        if (lower(suffix[i]) != r->base[i]) return NULL;
    /* Host names are case-insensitive; gear names are lower-case. */
    return find_gear(r, host, n - r->base_len - 1, true);
}

int orr_router_match(const orr_router *r, const char *host, size_t host_len, const char *path,
                     size_t path_len, char *scratch, size_t scratch_len, orr_route_match *m) {
    m->gear = NULL;
    m->data = NULL;
    m->n_params = 0;
    if (path_len == 0 || path[0] != '/' || !path_decodable(path, path_len)) return ORR_EINVAL;

    const char *rest = path;
    size_t rest_len = path_len;
    const gear *ge = gear_by_host(r, host, host_len);
    if (!ge) {
        size_t end = 1;
        while (end < path_len && path[end] != '/')
            end++;
        for (size_t g = 0; g < r->n_gears && !ge; g++)
            if (seg_equals(path + 1, end - 1, r->gears[g].name, r->gears[g].name_len))
                ge = &r->gears[g];
        if (!ge) return ORR_ENOTFOUND;
        rest = path + end;
        rest_len = path_len - end; /* "/echo" leaves "", which is the root */
    }

    /* One trailing '/' is set apart: "/ws/" is "/ws" for routes without a
     * wildcard, and "" and "/" are both the root. */
    bool trailing = rest_len > 0 && rest[rest_len - 1] == '/';
    size_t body_len = trailing ? rest_len - 1 : rest_len;
    for (size_t i = 0; i < ge->n_routes; i++) {
        const route *rt = &ge->routes[i];
        if (match_route(rt, rest, body_len, trailing, NULL, 0, NULL) != 1) continue;
        int rc = match_route(rt, rest, body_len, trailing, scratch, scratch_len, m);
        if (rc < 0) {
            m->n_params = 0;
            return rc;
        }
        m->gear = ge->name;
        m->data = rt->data;
        return 0;
    }
    return ORR_ENOTFOUND;
}
