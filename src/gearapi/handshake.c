/*
 * The handshake as a gear sees it (orr_hs_* in <orrery/gear.h>). Strings
 * are copied NUL-terminated into a small arena that lives as long as the
 * handshake: until `connect` returns, or until `init` returns on upgrade.
 */
#include "conn/conn.h"
#include "gearapi/gearapi.h"
#include "http/websocket.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct hs_block {
    struct hs_block *next;
    size_t used, cap;
    char data[];
};

char *hs_alloc(orr_handshake *hs, size_t n) {
    /* Most handshakes fit in the inline buffer (on the worker's stack), so
     * they cost no allocation at all. */
    if (sizeof hs->inline_buf - hs->inline_used >= n) {
        char *p = hs->inline_buf + hs->inline_used;
        hs->inline_used += n;
        return p;
    }
    struct hs_block *b = hs->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 4000 ? n : 4000;
        b = orr_xmalloc(sizeof *b + cap);
        b->cap = cap;
        b->used = 0;
        b->next = hs->blocks;
        hs->blocks = b;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

static const char *hs_strndup(orr_handshake *hs, const char *p, size_t n) {
    char *s = hs_alloc(hs, n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

void hs_init(orr_handshake *hs, orr_conn *c, const orr_http_request *req, const char *ctx) {
    memset(hs, 0, sizeof *hs);
    hs->c = c;
    hs->req = req;
    hs->ctx = hs_strndup(hs, ctx, strlen(ctx));
}

void hs_release(orr_handshake *hs) {
    struct hs_block *b = hs->blocks;
    while (b) {
        struct hs_block *next = b->next;
        free(b);
        b = next;
    }
    hs->blocks = NULL;
}

const char *orr_hs_subprotocol_at(const orr_handshake *hs, size_t i) {
    orr_ws_protocol_iter it = {.req = hs->req};
    orr_span tok, found = {NULL, 0};
    int rc;
    for (size_t k = 0; (rc = orr_ws_protocol_next(&it, &tok)) == 1; k++)
        if (k == i) found = tok;
    /* A list with an element that is not a token is refused (400): none. */
    return rc == 0 && found.p ? hs_strndup((orr_handshake *)hs, found.p, found.n) : NULL;
}

int orr_hs_select_subprotocol(orr_handshake *hs, const char *protocol) {
    if (!protocol) {
        hs->subprotocol = NULL;
        return 0;
    }
    size_t n = strlen(protocol);
    orr_ws_protocol_iter it = {.req = hs->req};
    orr_span tok;
    while (orr_ws_protocol_next(&it, &tok) == 1)
        if (tok.n == n && memcmp(tok.p, protocol, n) == 0) {
            hs->subprotocol = hs_strndup(hs, protocol, n);
            return 0;
        }
    hs->refused_subprotocol = hs_strndup(hs, protocol, n < 200 ? n : 200);
    return ORR_EINVAL;
}

const char *orr_hs_method(const orr_handshake *hs) {
    return hs_strndup((orr_handshake *)hs, hs->req->method.p, hs->req->method.n);
}

const char *orr_hs_path(const orr_handshake *hs) {
    return hs_strndup((orr_handshake *)hs, hs->req->path.p, hs->req->path.n);
}

const char *orr_hs_query_string(const orr_handshake *hs) {
    return hs_strndup((orr_handshake *)hs, hs->req->query.p, hs->req->query.n);
}

const char *orr_hs_param(const orr_handshake *hs, const char *name) {
    for (size_t i = 0; i < hs->match.n_params; i++)
        if (strcmp(hs->match.params[i].name, name) == 0) return hs->match.params[i].value;
    return NULL;
}

const char *orr_hs_query(const orr_handshake *hs, const char *name) {
    const char *q = hs->req->query.p, *end = q + hs->req->query.n;
    size_t name_len = strlen(name);
    char *key = hs_alloc((orr_handshake *)hs, hs->req->query.n + 1);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *kend = eq ? eq : stop;
        long kl = orr_url_decode(q, (size_t)(kend - q), key, true);
        if (kl == (long)name_len && memcmp(key, name, name_len) == 0) {
            const char *v = eq ? eq + 1 : stop;
            char *val = hs_alloc((orr_handshake *)hs, (size_t)(stop - v) + 1);
            long vl = orr_url_decode(v, (size_t)(stop - v), val, true);
            if (vl < 0) return NULL;
            val[vl] = '\0';
            return val;
        }
        q = stop + (amp ? 1 : 0);
    }
    return NULL;
}

int hs_query_valid(const orr_handshake *hs) {
    size_t n = hs->req->query.n;
    char *tmp = hs_alloc((orr_handshake *)hs, n + 1);
    const char *q = hs->req->query.p, *end = q + n;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if (orr_url_decode(q, (size_t)(stop - q), tmp, true) < 0) return 0;
        q = stop + (amp ? 1 : 0);
    }
    return 1;
}

const char *orr_hs_header(const orr_handshake *hs, const char *name) {
    const orr_span *v = orr_http_header_get(hs->req, name);
    return v ? hs_strndup((orr_handshake *)hs, v->p, v->n) : NULL;
}

int orr_hs_header_at(const orr_handshake *hs, size_t i, const char **name, const char **value) {
    if (i >= hs->req->n_headers) return ORR_ENOTFOUND;
    const orr_http_header *h = &hs->req->headers[i];
    char *n = (char *)hs_strndup((orr_handshake *)hs, h->name.p, h->name.n);
    for (char *p = n; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    *name = n;
    *value = hs_strndup((orr_handshake *)hs, h->value.p, h->value.n);
    return 0;
}

const char *orr_hs_cookie(const orr_handshake *hs, const char *name) {
    size_t name_len = strlen(name);
    for (size_t i = 0; i < hs->req->n_headers; i++) {
        const orr_http_header *h = &hs->req->headers[i];
        if (h->name.n != 6 || strncasecmp(h->name.p, "cookie", 6) != 0) continue;
        const char *p = h->value.p, *end = p + h->value.n;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi ? semi : end;
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            if (eq && (size_t)(eq - p) == name_len && memcmp(p, name, name_len) == 0) {
                const char *v = eq + 1, *ve = stop;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                    ve--;
                if (ve - v >= 2 && *v == '"' && ve[-1] == '"') v++, ve--;
                return hs_strndup((orr_handshake *)hs, v, (size_t)(ve - v));
            }
            p = stop + (semi ? 1 : 0);
        }
    }
    return NULL;
}

const char *orr_hs_client_ip(const orr_handshake *hs) {
    return hs->client_ip;
}

const char *orr_hs_context_id(const orr_handshake *hs) {
    return hs->ctx;
}

void orr_hs_set_assigns(orr_handshake *hs, void *assigns) {
    hs->assigns = assigns;
}

static int header_value_ok(const char *s) {
    for (; *s; s++)
        if (*s == '\r' || *s == '\n') return 0;
    return 1;
}

int orr_hs_add_header(orr_handshake *hs, const char *name, const char *value) {
    if (!name || !value || !*name || !header_value_ok(name) || !header_value_ok(value) ||
        strchr(name, ':'))
        return ORR_EINVAL;
    size_t room = sizeof hs->resp_headers - hs->resp_headers_len;
    int n = snprintf(hs->resp_headers + hs->resp_headers_len, room, "%s: %s\r\n", name, value);
    if (n < 0 || (size_t)n >= room) return ORR_ENOMEM;
    hs->resp_headers_len += (size_t)n;
    return 0;
}

int orr_hs_respond(orr_handshake *hs, int status, const char *content_type, const void *body,
                   size_t body_len) {
    if (status < 200 || status > 599 || hs->resp_status) return ORR_EINVAL;
    if (content_type && !header_value_ok(content_type)) return ORR_EINVAL;
    hs->resp_status = status;
    hs->resp_ctype = content_type ? hs_strndup(hs, content_type, strlen(content_type)) : NULL;
    if (body && body_len) {
        char *b = hs_alloc(hs, body_len);
        memcpy(b, body, body_len);
        hs->resp_body = b;
    }
    hs->resp_body_len = body ? body_len : 0;
    return 0;
}
