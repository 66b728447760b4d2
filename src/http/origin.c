/*
 * Origins for the allowlist (origin.h).
 */
#include "http/origin.h"

#include <string.h>

static char lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* A host name or IPv4 address: letters, digits, '-', '.', '_', not empty,
 * no empty label. */
static bool host_name_valid(const char *p, size_t n) {
    if (n == 0 || p[0] == '.' || p[n - 1] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!(is_alpha(c) || is_digit(c) || c == '-' || c == '_' || c == '.')) return false;
        if (c == '.' && p[i + 1] == '.') return false;
    }
    return true;
}

/* [hex:colons.and.dots] */
static bool host_v6_valid(const char *p, size_t n) {
    if (n < 4 || p[0] != '[' || p[n - 1] != ']') return false;
    for (size_t i = 1; i + 1 < n; i++) {
        char c = lower(p[i]);
        if (!(is_digit(c) || (c >= 'a' && c <= 'f') || c == ':' || c == '.')) return false;
    }
    return true;
}

/* The port's digits (1..65535), or -1. */
static long port_of(const char *p, size_t n) {
    if (n == 0 || n > 5) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i])) return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v >= 1 && v <= 65535 ? v : -1;
}

static long default_port(const char *scheme, size_t n) {
    if ((n == 4 && memcmp(scheme, "http", 4) == 0) || (n == 2 && memcmp(scheme, "ws", 2) == 0))
        return 80;
    if ((n == 5 && memcmp(scheme, "https", 5) == 0) || (n == 3 && memcmp(scheme, "wss", 3) == 0))
        return 443;
    return -1;
}

/* Where the host ends (its port's ':' or the end), or NULL when a bracket
 * is not closed. */
static const char *host_end(const char *h, const char *end) {
    if (h < end && *h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));
        return close ? close + 1 : NULL;
    }
    const char *colon = memchr(h, ':', (size_t)(end - h));
    return colon ? colon : end;
}

/* The scheme's length (`[a-z][a-z0-9+.-]*` before "://"), or 0. */
static size_t scheme_len(const char *in, size_t n) {
    if (n == 0 || !is_alpha(in[0])) return 0;
    size_t s = 1;
    while (s < n &&
           (is_alpha(in[s]) || is_digit(in[s]) || in[s] == '+' || in[s] == '-' || in[s] == '.'))
        s++;
    return s + 3 <= n && memcmp(in + s, "://", 3) == 0 ? s : 0;
}

long orr_origin_normalize(const char *in, size_t n, char *out, size_t cap) {
    if (n == 4 && memcmp(in, "null", 4) == 0) {
        if (cap < 5) return -1;
        memcpy(out, "null", 5);
        return 4;
    }
    size_t s = scheme_len(in, n);
    if (s == 0 || s > 32) return -1;
    const char *end = in + n, *h = in + s + 3, *he = host_end(h, end);
    if (!he || he == h) return -1;
    size_t hn = (size_t)(he - h);
    if (!(h[0] == '[' ? host_v6_valid(h, hn) : host_name_valid(h, hn))) return -1;
    long port = -1;
    if (he < end) {
        if (*he != ':' || (port = port_of(he + 1, (size_t)(end - he - 1))) < 0) return -1;
    }
    char scheme[33];
    for (size_t i = 0; i < s; i++)
        scheme[i] = lower(in[i]);
    if (port == default_port(scheme, s)) port = -1;
    if (s + 3 + hn + 7 > cap) return -1;
    size_t o = 0;
    memcpy(out, scheme, s);
    memcpy(out + s, "://", 3);
    o = s + 3;
    for (size_t i = 0; i < hn; i++)
        out[o++] = lower(h[i]);
    if (port >= 0) {
        char digits[8];
        int d = 0;
        for (long v = port; v; v /= 10)
            digits[d++] = (char)('0' + v % 10);
        out[o++] = ':';
        while (d)
            out[o++] = digits[--d];
    }
    out[o] = '\0';
    return (long)o;
}

bool orr_origin_pattern_valid(const char *p, size_t n) {
    return n > 2 && p[0] == '*' && p[1] == '.' && host_name_valid(p + 2, n - 2);
}

/* The host of a normalised origin (not "null"). */
static void host_of(const char *origin, size_t n, const char **h, size_t *hn) {
    size_t s = scheme_len(origin, n);
    const char *start = origin + s + 3, *end = host_end(start, origin + n);
    *h = start;
    *hn = end ? (size_t)(end - start) : 0;
}

static bool entry_matches(const char *e, size_t en, const char *origin, size_t n) {
    if (en > 2 && e[0] == '*' && e[1] == '.') {
        if (n == 4 && memcmp(origin, "null", 4) == 0) return false;
        const char *h;
        size_t hn;
        host_of(origin, n, &h, &hn);
        size_t sn = en - 1; /* ".example.com" */
        return hn > sn && memcmp(h + hn - sn, e + 1, sn) == 0;
    }
    return en == n && memcmp(e, origin, n) == 0;
}

bool orr_origin_allowed(const char *list, const char *origin, size_t n) {
    for (const char *e = list; e && *e;) {
        const char *nl = strchr(e, '\n');
        size_t en = nl ? (size_t)(nl - e) : strlen(e);
        if (entry_matches(e, en, origin, n)) return true;
        e = nl ? nl + 1 : e + en;
    }
    return false;
}
