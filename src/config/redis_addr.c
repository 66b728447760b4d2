/*
 * Redis addresses for "cluster.redis": "redis://HOST[:PORT][/DB]" or
 * "unix:PATH". The parser accepts only what the cluster code honours, and
 * refuses the rest by name (a password, TLS, query options) rather than
 * ignoring it, so that a URL copied from another tool never silently loses
 * a part its writer relied on. No I/O, no allocation.
 */
#include "config/config.h"
#include "config/config_internal.h"

#include "common/err.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#define FORMS "expected \"redis://HOST[:PORT][/DB]\" or \"unix:PATH\""
#define DEFAULT_PORT 6379
#define MAX_DB 2147483647UL

/* The decimal number in the n bytes at p, if it is one and at most max. */
static int parse_decimal(const char *p, size_t n, unsigned long max, unsigned long *out) {
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (unsigned long)(p[i] - '0');
        if (v > max) return -2; /* stops before v can wrap, however many digits follow */
    }
    *out = v;
    return 0;
}

static int parse_unix(const char *path, orr_redis_addr *a, char *why, size_t whylen) {
    size_t len = strlen(path);
    if (len == 0) return orr_errf(why, whylen, -1, "empty unix socket path after \"unix:\"");
    /* "unix://x" would be the absolute path "/x" to the kernel but reads as a
     * URL whose PATH is "x": say which form we mean instead of guessing. */
    if (strncmp(path, "//", 2) == 0)
        return orr_errf(
            why, whylen, -1,
            "expected unix:PATH, e.g. unix:/run/redis.sock (no \"//\" after \"unix:\")");
    if (len >= sizeof a->path)
        return orr_errf(why, whylen, -1, "unix socket path longer than %zu bytes (%zu)",
                        sizeof a->path - 1, len);
    memcpy(a->path, path, len + 1);
    return 0;
}

/* The host of an authority: "[v6]" (stored without brackets) or a name or
 * IPv4 address. *rest is set to what follows it. */
static int parse_host(const char *p, size_t n, orr_redis_addr *a, const char **rest, char *why,
                      size_t whylen) {
    const char *h = p, *end;
    if (n > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (!close) return orr_errf(why, whylen, -1, "missing ']' after the IPv6 address");
        h = p + 1;
        end = close;
        *rest = close + 1;
        if (*rest < p + n && **rest != ':')
            return orr_errf(why, whylen, -1, "expected :PORT or /DB after ']'");
    } else {
        end = memchr(p, ':', n);
        if (!end) end = p + n;
        *rest = end;
        if (end < p + n && memchr(end + 1, ':', (size_t)(p + n - end - 1)))
            return orr_errf(why, whylen, -1,
                            "an IPv6 address needs brackets, e.g. redis://[::1]:6379");
    }
    size_t hlen = (size_t)(end - h);
    if (hlen == 0) return orr_errf(why, whylen, -1, "missing host");
    if (hlen >= sizeof a->host)
        return orr_errf(why, whylen, -1, "host longer than %zu bytes", sizeof a->host - 1);
    memcpy(a->host, h, hlen);
    a->host[hlen] = '\0';
    if (h != p) {
        struct in6_addr v6;
        if (inet_pton(AF_INET6, a->host, &v6) != 1)
            return orr_errf(why, whylen, -1, "not a valid IPv6 address");
        return 0;
    }
    const char *bad = orr__config_check_hostname(a->host);
    return bad ? orr_errf(why, whylen, -1, "%s", bad) : 0;
}

/* What follows "redis://". */
static int parse_tcp(const char *p, orr_redis_addr *a, char *why, size_t whylen) {
    if (strpbrk(p, "?#"))
        return orr_errf(why, whylen, -1,
                        "query and fragment are not supported (nothing may follow /DB)");
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (memchr(p, '@', n))
        return orr_errf(why, whylen, -1, "a user or password in the URL is not supported");

    const char *rest = NULL;
    if (parse_host(p, n, a, &rest, why, whylen) < 0) return -1;
    a->port = DEFAULT_PORT;
    if (rest < p + n) { /* ":PORT" */
        unsigned long port = 0;
        size_t plen = (size_t)(p + n - rest - 1);
        if (plen == 0) return orr_errf(why, whylen, -1, "missing port after ':'");
        int rc = parse_decimal(rest + 1, plen, 65535, &port);
        if (rc == -1) return orr_errf(why, whylen, -1, "the port must be a number from 1 to 65535");
        if (rc == -2 || port == 0)
            return orr_errf(why, whylen, -1, "port out of range: must be from 1 to 65535");
        a->port = (uint16_t)port;
    }
    a->db = 0;
    if (slash) { /* "/DB" */
        unsigned long db = 0;
        size_t dlen = strlen(slash + 1);
        if (dlen == 0)
            return orr_errf(why, whylen, -1,
                            "missing database number after '/' (leave out \"/DB\" for database 0)");
        int rc = parse_decimal(slash + 1, dlen, MAX_DB, &db);
        if (rc == -1)
            return orr_errf(why, whylen, -1, "the database must be a number from 0 to %lu", MAX_DB);
        if (rc == -2)
            return orr_errf(why, whylen, -1, "database number out of range: must be from 0 to %lu",
                            MAX_DB);
        a->db = (int)db;
    }
    return 0;
}

int orr_redis_addr_parse(const char *s, orr_redis_addr *out, char *why, size_t whylen) {
    orr_redis_addr a = {.host = "", .path = ""};
    int rc;
    /* Schemes are case-insensitive (RFC 3986 3.1); the rest is not. */
    if (!s)
        rc = orr_errf(why, whylen, -1, "%s", FORMS);
    else if (strncasecmp(s, "unix:", 5) == 0)
        rc = parse_unix(s + 5, &a, why, whylen);
    else if (strncasecmp(s, "redis://", 8) == 0)
        rc = parse_tcp(s + 8, &a, why, whylen);
    else if (strncasecmp(s, "rediss://", 9) == 0)
        rc = orr_errf(why, whylen, -1, "TLS (rediss://) is not supported; " FORMS);
    else
        rc = orr_errf(why, whylen, -1, "%s", FORMS);
    if (rc == 0) *out = a;
    return rc;
}
