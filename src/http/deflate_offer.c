/*
 * permessage-deflate negotiation (deflate_offer.h).
 *
 * Grammar (RFC 6455 section 9.1, RFC 7230 section 3.2.6):
 *   extension-list = 1#extension
 *   extension      = token *( OWS ";" OWS param )
 *   param          = token [ OWS "=" OWS ( token / quoted-string ) ]
 * A quoted value must be a token once unquoted (RFC 6455 section 9.1).
 */
#include "http/deflate_offer.h"

#include <stdio.h>
#include <string.h>

static bool is_tchar(unsigned char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool span_eq_nocase(const char *p, size_t n, const char *z) {
    if (strlen(z) != n) return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i] >= 'A' && p[i] <= 'Z' ? (char)(p[i] - 'A' + 'a') : p[i];
        if (c != z[i]) return false;
    }
    return true;
}

/* A cursor over one header value. */
typedef struct cur {
    const char *p, *end;
} cur;

static void ows(cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static size_t token(cur *c, const char **start) {
    *start = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    return (size_t)(c->p - *start);
}

/* A param's value, token or quoted-string, unquoted into buf: its length,
 * or -1 when it is not well formed or not a token once unquoted. */
static long value(cur *c, char *buf, size_t cap) {
    const char *s;
    if (c->p < c->end && *c->p == '"') {
        size_t n = 0;
        for (c->p++; c->p < c->end && *c->p != '"'; c->p++) {
            if (*c->p == '\\' && c->p + 1 < c->end) c->p++;
            if (n + 1 >= cap || !is_tchar((unsigned char)*c->p)) return -1;
            buf[n++] = *c->p;
        }
        if (c->p == c->end) return -1;
        c->p++;
        return n ? (long)n : -1;
    }
    size_t n = token(c, &s);
    if (n == 0 || n >= cap) return -1;
    memcpy(buf, s, n);
    return (long)n;
}

/* 8..15 written without leading zeros: the number, or -1. */
static int window_bits(const char *v, long n) {
    if (n == 1 && v[0] == '8') return 8;
    if (n == 1 && v[0] == '9') return 9;
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
    return -1;
}

/* What one offer asked for, as it is parsed. */
typedef struct offer {
    bool ok;
    unsigned seen; /* the params seen: a second one declines the offer */
    int server_bits, client_bits;
} offer;

enum { P_SNCT = 1, P_CNCT = 2, P_SMWB = 4, P_CMWB = 8 };

/* One param of a permessage-deflate offer (name, and value when has_value). */
static void param(offer *o, const char *name, size_t nn, bool has_value, const char *v, long vn) {
    unsigned bit = span_eq_nocase(name, nn, "server_no_context_takeover")   ? P_SNCT
                   : span_eq_nocase(name, nn, "client_no_context_takeover") ? P_CNCT
                   : span_eq_nocase(name, nn, "server_max_window_bits")     ? P_SMWB
                   : span_eq_nocase(name, nn, "client_max_window_bits")     ? P_CMWB
                                                                            : 0;
    if (!bit || (o->seen & bit)) {
        o->ok = false;
        return;
    }
    o->seen |= bit;
    if (bit == P_SNCT || bit == P_CNCT) {
        if (has_value) o->ok = false;
    } else if (bit == P_SMWB) {
        o->server_bits = has_value ? window_bits(v, vn) : -1;
        if (o->server_bits < 9) o->ok = false; /* absent, bad, or 8 */
    } else if (has_value) {
        o->client_bits = window_bits(v, vn);
        if (o->client_bits < 0) o->ok = false;
    }
}

/* The params of one extension element, up to its ',' or the end: false
 * when the element is not well formed (the cursor is then past it). */
static bool params(cur *c, offer *o) {
    for (;;) {
        ows(c);
        if (c->p == c->end || *c->p == ',') return true;
        if (*c->p != ';') return false;
        c->p++;
        ows(c);
        const char *name;
        size_t nn = token(c, &name);
        if (nn == 0) return false;
        ows(c);
        char v[16];
        long vn = 0;
        bool has_value = c->p < c->end && *c->p == '=';
        if (has_value) {
            c->p++;
            ows(c);
            if ((vn = value(c, v, sizeof v)) < 0) return false;
        }
        param(o, name, nn, has_value, v, vn);
    }
}

/* Past a malformed element, from its start: the next ',' outside quotes
 * (an unclosed quote takes the rest of the line). */
static void skip_element(cur *c) {
    bool quoted = false;
    for (; c->p < c->end; c->p++) {
        if (quoted && *c->p == '\\' && c->p + 1 < c->end)
            c->p++;
        else if (*c->p == '"')
            quoted = !quoted;
        else if (!quoted && *c->p == ',')
            return;
    }
}

/* The first acceptable offer in one header value: true with *o. */
static bool first_in(const char *v, size_t n, offer *o) {
    cur c = {v, v + n};
    while (c.p < c.end) {
        ows(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        const char *name, *start = c.p;
        size_t nn = token(&c, &name);
        *o = (offer){.ok = nn > 0, .server_bits = 15, .client_bits = 15};
        bool formed = nn > 0 && params(&c, o);
        if (!formed) { /* from its start again, quotes and all */
            c.p = start;
            skip_element(&c);
        }
        if (formed && o->ok && span_eq_nocase(name, nn, "permessage-deflate")) return true;
        if (c.p < c.end) c.p++; /* the ',' */
    }
    return false;
}

int orr_ws_deflate_negotiate(const orr_http_request *req, orr_ws_deflate_params *out,
                             char resp[ORR_WS_DEFLATE_RESPONSE_MAX]) {
    for (size_t i = 0; i < req->n_headers; i++) {
        const orr_http_header *h = &req->headers[i];
        offer o;
        if (!span_eq_nocase(h->name.p, h->name.n, "sec-websocket-extensions") ||
            !first_in(h->value.p, h->value.n, &o))
            continue;
        out->server_max_window_bits = (uint8_t)o.server_bits;
        out->client_max_window_bits = (uint8_t)o.client_bits;
        int len = snprintf(resp, ORR_WS_DEFLATE_RESPONSE_MAX,
                           "permessage-deflate; server_no_context_takeover; "
                           "client_no_context_takeover");
        if (o.seen & P_SMWB)
            snprintf(resp + len, (size_t)(ORR_WS_DEFLATE_RESPONSE_MAX - len),
                     "; server_max_window_bits=%d", o.server_bits);
        return 1;
    }
    return 0;
}
