/*
 * The router: gear selection by Host and by path prefix, the pattern
 * grammar (literals, :params, a trailing *wildcard, the optional trailing
 * slash), percent-decoding, route order, and the patterns refused at start.
 */
#include "http/router.h"

#include "common/err.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* Routes by gear; `data` is the route's index in this table, plus one. */
static const struct {
    const char *gear, *pattern;
} routes[] = {
    {"echo", "/ws"},                  /* 1 */
    {"testgear", "/ws"},              /* 2 */
    {"chat", "/"},                    /* 3 */
    {"chat", "/room/:id"},            /* 4 */
    {"chat", "/room/:id/user/:user"}, /* 5 */
    {"chat", "/files/*path"},         /* 6 */
    {"chat", "/x/:p/*rest"},          /* 7 */
    {"chat", "/order/:any"},          /* 8: added before 9, so it wins */
    {"chat", "/order/fixed"},         /* 9 */
    {"chat", "/lit-~.!$&'()*+,;=:@"}, /* 10 */
    {"g_2", "/ws"},                   /* 11 */
    {"chat", "/caf\xc3\xa9"},         /* 12 */
};

static orr_router *build(const char *base) {
    orr_router *r = orr_router_new(base);
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        char err[128] = "";
        int rc =
            orr_router_add(r, routes[i].gear, routes[i].pattern, (void *)(i + 1), err, sizeof err);
        cr_assert_eq(rc, 0, "route %zu: %s", i, err);
    }
    return r;
}

typedef struct match_case {
    const char *host; /* NULL: no Host */
    const char *path;
    int want;           /* 0, ORR_ENOTFOUND, ORR_EINVAL */
    const char *gear;   /* when want == 0 */
    size_t route;       /* when want == 0 */
    const char *params; /* "name=value;name=value" */
} match_case;

static const match_case cases[] = {
    /* Prefix selection on any host. */
    {NULL, "/echo/ws", 0, "echo", 1, ""},
    {"127.0.0.1:8080", "/echo/ws", 0, "echo", 1, ""},
    {"other.example", "/testgear/ws", 0, "testgear", 2, ""},
    {NULL, "/g_2/ws", 0, "g_2", 11, ""},
    {NULL, "/echo/ws/", 0, "echo", 1, ""},
    {NULL, "/echo/ws//", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/echo//ws", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "//echo/ws", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/echo/WS", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/Echo/ws", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/echo", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/echo/ws/x", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/nope/ws", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/ws", ORR_ENOTFOUND, NULL, 0, NULL},
    /* The gear's root: "/chat", "/chat/". */
    {NULL, "/chat", 0, "chat", 3, ""},
    {NULL, "/chat/", 0, "chat", 3, ""},
    {NULL, "/chat//", ORR_ENOTFOUND, NULL, 0, NULL},

    /* Host selection, case-insensitive, port stripped, no prefix. */
    {"echo.localhost", "/ws", 0, "echo", 1, ""},
    {"echo.localhost:8080", "/ws", 0, "echo", 1, ""},
    {"ECHO.LocalHost:8080", "/ws/", 0, "echo", 1, ""},
    {"echo.localhost.", "/ws", 0, "echo", 1, ""},
    {"chat.localhost", "/", 0, "chat", 3, ""},
    {"chat.localhost", "/room/7", 0, "chat", 4, "id=7"},
    /* With a gear host, the path is that gear's alone: no prefix fallback. */
    {"echo.localhost", "/echo/ws", ORR_ENOTFOUND, NULL, 0, NULL},
    {"echo.localhost", "/testgear/ws", ORR_ENOTFOUND, NULL, 0, NULL},
    /* Hosts that name no gear fall back to the prefix. */
    {"nope.localhost", "/echo/ws", 0, "echo", 1, ""},
    {"localhost", "/echo/ws", 0, "echo", 1, ""},
    {".localhost", "/echo/ws", 0, "echo", 1, ""},
    {"a.echo.localhost", "/echo/ws", 0, "echo", 1, ""},
    {"echo.localhost.evil", "/echo/ws", 0, "echo", 1, ""},
    {"echolocalhost", "/echo/ws", 0, "echo", 1, ""},
    {"echo.xlocalhost", "/echo/ws", 0, "echo", 1, ""},
    {"[::1]:8080", "/echo/ws", 0, "echo", 1, ""},
    {"", "/echo/ws", 0, "echo", 1, ""},
    {"echo.localhost", "/nope", ORR_ENOTFOUND, NULL, 0, NULL},

    /* Parameters and the wildcard. */
    {NULL, "/chat/room/42", 0, "chat", 4, "id=42"},
    {NULL, "/chat/room/42/", 0, "chat", 4, "id=42"},
    {NULL, "/chat/room/", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/chat/room", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/chat/room//", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/chat/room/42/user/ann", 0, "chat", 5, "id=42;user=ann"},
    {NULL, "/chat/room/42/user", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/chat/files/a", 0, "chat", 6, "path=a"},
    {NULL, "/chat/files/a/b/c.txt", 0, "chat", 6, "path=a/b/c.txt"},
    {NULL, "/chat/files", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/chat/files/", ORR_ENOTFOUND, NULL, 0, NULL},
    /* With a wildcard the trailing '/' is an empty segment: no match. */
    {NULL, "/chat/files/a/", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/chat/files/a//b", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/chat/x/1/2", 0, "chat", 7, "p=1;rest=2"},
    {NULL, "/chat/x/1/2/3", 0, "chat", 7, "p=1;rest=2/3"},
    {NULL, "/chat/x/1", ORR_ENOTFOUND, NULL, 0, NULL},
    /* Routes are tried in the order added. */
    {NULL, "/chat/order/fixed", 0, "chat", 8, "any=fixed"},
    {NULL, "/chat/lit-~.!$&'()*+,;=:@", 0, "chat", 10, ""},

    /* Percent-decoding: before comparing, and in values. */
    {NULL, "/echo/w%73", 0, "echo", 1, ""},
    {NULL, "/%65cho/ws", 0, "echo", 1, ""},
    {NULL, "/echo/W%73", ORR_ENOTFOUND, NULL, 0, NULL},
    {"echo.localhost", "/%77%73", 0, "echo", 1, ""},
    {NULL, "/chat/room/a%20b", 0, "chat", 4, "id=a b"},
    {NULL, "/chat/room/a+b", 0, "chat", 4, "id=a+b"},
    {NULL, "/chat/room/%C3%A9", 0, "chat", 4, "id=\xc3\xa9"},
    {NULL, "/chat/room/caf\xc3\xa9", 0, "chat", 4, "id=caf\xc3\xa9"},
    {NULL, "/chat/files/a%20/b%3F", 0, "chat", 6, "path=a /b?"},
    {NULL, "/chat/lit-%7E.!$&'()*+,;=:@", 0, "chat", 10, ""},
    {NULL, "/chat/caf%C3%a9", 0, "chat", 12, ""},
    {NULL, "/chat/caf\xc3\xa9/", 0, "chat", 12, ""},
    {NULL, "/chat/caf%C3", ORR_ENOTFOUND, NULL, 0, NULL},
    {NULL, "/chat/%72oom/1", 0, "chat", 4, "id=1"},
    /* ... and refused where a segment cannot be decoded. */
    {NULL, "/chat/room/a%2Fb", ORR_EINVAL, NULL, 0, NULL},
    {NULL, "/chat/room/a%2fb", ORR_EINVAL, NULL, 0, NULL},
    {NULL, "/chat/room/a%00", ORR_EINVAL, NULL, 0, NULL},
    {NULL, "/chat/room/%zz", ORR_EINVAL, NULL, 0, NULL},
    {NULL, "/chat/room/%4", ORR_EINVAL, NULL, 0, NULL},
    {NULL, "/chat/room/%", ORR_EINVAL, NULL, 0, NULL},
    /* Even when no route would match: a bad path is a bad path. */
    {NULL, "/nope/%", ORR_EINVAL, NULL, 0, NULL},
    {NULL, "", ORR_EINVAL, NULL, 0, NULL},
    {NULL, "echo/ws", ORR_EINVAL, NULL, 0, NULL},
};

/* Check m's parameters against "a=1;b=2". */
static void expect_params(const orr_route_match *m, const char *want, const char *path) {
    char buf[256];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < m->n_params; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s=%s", i ? ";" : "", m->params[i].name,
                              m->params[i].value);
    cr_expect_str_eq(buf, want, "%s", path);
}

static void run_cases(const orr_router *r, const match_case *cs, size_t count) {
    for (size_t i = 0; i < count; i++) {
        const match_case *c = &cs[i];
        char scratch[256];
        orr_route_match m;
        size_t plen = strlen(c->path);
        int rc = orr_router_match(r, c->host, c->host ? strlen(c->host) : 0, c->path, plen, scratch,
                                  sizeof scratch, &m);
        cr_expect_eq(rc, c->want, "%s %s: rc %d", c->host ? c->host : "-", c->path, rc);
        if (rc != 0 || c->want != 0) continue;
        cr_expect_str_eq(m.gear, c->gear, "%s", c->path);
        cr_expect_eq((size_t)m.data, c->route, "%s: route %zu", c->path, (size_t)m.data);
        expect_params(&m, c->params, c->path);
    }
}

Test(router, matching_table) {
    orr_router *r = build("localhost");
    run_cases(r, cases, sizeof cases / sizeof *cases);
    orr_router_free(r);
}

Test(router, base_domain_is_normalised) {
    orr_router *r = build("Example.COM.");
    static const match_case c[] = {
        {"echo.example.com", "/ws", 0, "echo", 1, ""},
        {"echo.EXAMPLE.com:443", "/ws", 0, "echo", 1, ""},
        {"echo.localhost", "/ws", ORR_ENOTFOUND, NULL, 0, NULL},
        {"echo.localhost", "/echo/ws", 0, "echo", 1, ""},
    };
    run_cases(r, c, sizeof c / sizeof *c);
    orr_router_free(r);
}

Test(router, no_base_domain_means_prefix_only) {
    orr_router *r = build(NULL);
    static const match_case c[] = {
        {"echo.", "/ws", ORR_ENOTFOUND, NULL, 0, NULL},
        {"echo", "/echo/ws", 0, "echo", 1, ""},
    };
    run_cases(r, c, sizeof c / sizeof *c);
    orr_router_free(r);
}

Test(router, scratch_too_small) {
    orr_router *r = build("localhost");
    orr_route_match m;
    char scratch[8];
    const char *p = "/chat/room/1234567";
    cr_expect_eq(orr_router_match(r, NULL, 0, p, strlen(p), scratch, 8, &m), 0);
    cr_expect_str_eq(m.params[0].value, "1234567");
    p = "/chat/room/12345678";
    cr_expect_eq(orr_router_match(r, NULL, 0, p, strlen(p), scratch, 8, &m), ORR_ENOMEM);
    /* A route without parameters needs none. */
    p = "/echo/ws";
    cr_expect_eq(orr_router_match(r, NULL, 0, p, strlen(p), NULL, 0, &m), 0);
    orr_router_free(r);
}

Test(router, scratch_bound_in_header_suffices) {
    orr_router *r = orr_router_new("localhost");
    char pattern[256] = "", err[128];
    size_t n = 0;
    for (int i = 0; i < ORR_ROUTE_MAX_PARAMS - 1; i++)
        n += (size_t)snprintf(pattern + n, sizeof pattern - n, "/:p%d", i);
    snprintf(pattern + n, sizeof pattern - n, "/*rest");
    cr_assert_eq(orr_router_add(r, "g", pattern, NULL, err, sizeof err), 0, "%s", err);
    char path[256];
    n = (size_t)snprintf(path, sizeof path, "/g");
    for (int i = 0; i < ORR_ROUTE_MAX_PARAMS + 2; i++)
        n += (size_t)snprintf(path + n, sizeof path - n, "/%c", 'a' + i);
    char scratch[256];
    orr_route_match m;
    cr_expect_eq(orr_router_match(r, NULL, 0, path, n, scratch, n + ORR_ROUTE_MAX_PARAMS, &m), 0);
    cr_expect_eq(m.n_params, ORR_ROUTE_MAX_PARAMS);
    cr_expect_str_eq(m.params[ORR_ROUTE_MAX_PARAMS - 1].value, "p/q/r");
    orr_router_free(r);
}

typedef struct bad_pattern {
    const char *gear, *pattern;
} bad_pattern;

static const bad_pattern bad[] = {
    {"g", ""},       {"g", "ws"},     {"g", "//"},
    {"g", "/a//b"},  {"g", "/a/"},    {"g", "/:"},
    {"g", "/:Id"},   {"g", "/:1d"},   {"g", "/:a-b"},
    {"g", "/*"},     {"g", "/*a/b"},  {"g", "/*a/*b"},
    {"g", "/:a/:a"}, {"g", "/:a/*a"}, {"g", "/a%20b"},
    {"g", "/."},     {"g", "/.."},    {"g", "/a b"},
    {"g", "/a?b"},   {"g", "/a#b"},   {"g", "/a\"b"},
    {"g", NULL},     {"Echo", "/ws"}, {"1x", "/ws"},
    {"_x", "/ws"},   {"", "/ws"},     {"a-b", "/ws"},
    {"a.b", "/ws"},  {NULL, "/ws"},   {"abcdefghijklmnopqrstuvwxyz0123456", "/ws"}, /* 33 bytes */
};

Test(router, invalid_patterns_and_names) {
    orr_router *r = orr_router_new("localhost");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[128] = "";
        int rc = orr_router_add(r, bad[i].gear, bad[i].pattern, NULL, err, sizeof err);
        cr_expect_eq(rc, ORR_EINVAL, "case %zu (%s)", i, bad[i].pattern ? bad[i].pattern : "-");
        cr_expect_neq(err[0], '\0', "case %zu: no reason", i);
    }
    /* No error buffer is fine. */
    cr_expect_eq(orr_router_add(r, "g", "//", NULL, NULL, 0), ORR_EINVAL);
    /* Nothing was registered by the failures. */
    orr_route_match m;
    cr_expect_eq(orr_router_match(r, NULL, 0, "/g/ws", 5, NULL, 0, &m), ORR_ENOTFOUND);
    orr_router_free(r);
}

Test(router, param_limit) {
    orr_router *r = orr_router_new("localhost");
    char pattern[256];
    size_t n = 0;
    for (int i = 0; i < ORR_ROUTE_MAX_PARAMS; i++)
        n += (size_t)snprintf(pattern + n, sizeof pattern - n, "/:p%d", i);
    char err[128];
    cr_expect_eq(orr_router_add(r, "g", pattern, NULL, err, sizeof err), 0, "%s", err);
    snprintf(pattern + n, sizeof pattern - n, "/:p%d", ORR_ROUTE_MAX_PARAMS);
    cr_expect_eq(orr_router_add(r, "g", pattern, NULL, err, sizeof err), ORR_EINVAL);
    orr_router_free(r);
}

typedef struct name_case {
    const char *name;
    int want;
} name_case;

static const name_case names[] = {
    {"echo", 1},
    {"a", 1},
    {"g_2", 1},
    {"abcdefghijklmnopqrstuvwxyz012345", 1}, /* 32 bytes */
    {"abcdefghijklmnopqrstuvwxyz0123456", 0},
    {"", 0},
    {"Echo", 0},
    {"2g", 0},
    {"_g", 0},
    {"a-b", 0},
    {"a b", 0},
    {NULL, 0},
};

Test(router, gear_names) {
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        cr_expect_eq(orr_gear_name_valid(names[i].name), names[i].want, "%s",
                     names[i].name ? names[i].name : "NULL");
}
