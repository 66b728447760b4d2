/*
 * Request heads: locating the blank line, then one llhttp pass over the whole
 * head. llhttp checks the grammar; this file collects spans and adds the
 * checks llhttp leaves to its caller or makes more loosely than a server
 * should (crlf_only, check_head).
 */
#include "http/request.h"

#include <llhttp.h>
#include <string.h>

const char *orr_http_strerror(int err) {
    switch (err) {
    case ORR_HTTP_EBAD:
        return "bad HTTP request";
    case ORR_HTTP_ETOOLARGE:
        return "request head too large";
    case ORR_HTTP_ENOUPGRADE:
        return "no websocket upgrade asked for";
    default:
        return NULL;
    }
}

int orr_http_status_of(int err) {
    return err == ORR_HTTP_ETOOLARGE ? 431 : err == ORR_HTTP_ENOUPGRADE ? 426 : 400;
}

long orr_http_head_end(const char *buf, size_t len, size_t *scanned) {
    /* Bytes past the limit cannot belong to an acceptable head, so they are
     * never searched (they may be a pipelined request or garbage). */
    size_t lim = len < ORR_HTTP_MAX_HEAD ? len : ORR_HTTP_MAX_HEAD;
    size_t i = *scanned < lim ? *scanned : lim;

    /* The blank line ends the head: an LF followed by CRLF, or by a bare LF.
     * Bare-LF heads are found here so that such a client gets a prompt 400
     * from orr_http_parse_head instead of waiting for a timeout. */
    for (;;) {
        const char *lf = memchr(buf + i, '\n', lim - i);
        if (!lf) break;
        i = (size_t)(lf - buf);
        if (i + 1 < lim && buf[i + 1] == '\n') return (long)(i + 2);
        if (i + 2 < lim && buf[i + 1] == '\r' && buf[i + 2] == '\n') return (long)(i + 3);
        if (i + 2 >= lim) break; /* too few bytes after this LF to decide: look again */
        i++;
    }
    if (len >= ORR_HTTP_MAX_HEAD) return ORR_HTTP_ETOOLARGE;
    /* The last two bytes may start an end that is not complete yet. */
    size_t next = lim >= 2 ? lim - 2 : 0;
    if (next > *scanned) *scanned = next;
    return 0;
}

/* Collection state while llhttp runs; its callbacks reach it through
 * parser->data. */
typedef struct head_state {
    orr_http_request *req;
    bool in_field;     /* inside a header name (more name bytes may follow) */
    bool in_value;     /* inside a header value */
    bool headers_done; /* on_headers_complete was reached */
    bool too_many;     /* over ORR_HTTP_MAX_HEADERS */
} head_state;

static head_state *state_of(llhttp_t *p) {
    return p->data;
}

/* llhttp may deliver one field in several calls. With the whole head in one
 * buffer the pieces must be adjacent; a gap means llhttp skipped bytes inside
 * the field (an obs-fold line break), which we reject (RFC 9112 5.2 allows a
 * server to answer obs-fold with 400). */
static int span_extend(orr_span *s, const char *at, size_t n) {
    if (s->p == NULL) {
        s->p = at;
        s->n = n;
        return 0;
    }
    if (at != s->p + s->n) return HPE_USER;
    s->n += n;
    return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t n) {
    return span_extend(&state_of(p)->req->method, at, n);
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
    return span_extend(&state_of(p)->req->target, at, n);
}

static int start_header(head_state *st, const char *at) {
    orr_http_request *req = st->req;
    if (req->n_headers == ORR_HTTP_MAX_HEADERS) {
        st->too_many = true;
        return HPE_USER;
    }
    orr_http_header *h = &req->headers[req->n_headers++];
    h->name.p = at;
    h->name.n = 0;
    h->value.p = NULL;
    h->value.n = 0;
    st->in_field = true;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
    head_state *st = state_of(p);
    if (!st->in_field) {
        int rc = start_header(st, at);
        if (rc) return rc;
    }
    orr_http_header *h = &st->req->headers[st->req->n_headers - 1];
    if (at != h->name.p + h->name.n) return HPE_USER;
    h->name.n += n;
    return 0;
}

static int on_header_field_complete(llhttp_t *p) {
    head_state *st = state_of(p);
    /* A name llhttp reported no bytes for is still a header (an empty name,
     * rejected later), so that the count stays right. */
    if (!st->in_field) {
        int rc = start_header(st, NULL);
        if (rc) return rc;
    }
    st->in_field = false;
    st->in_value = false;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
    head_state *st = state_of(p);
    if (st->req->n_headers == 0) return HPE_USER;
    orr_http_header *h = &st->req->headers[st->req->n_headers - 1];
    if (!st->in_value) {
        h->value.p = at;
        h->value.n = n;
        st->in_value = true;
        return 0;
    }
    if (at != h->value.p + h->value.n) return HPE_USER;
    h->value.n += n;
    return 0;
}

static int on_header_value_complete(llhttp_t *p) {
    state_of(p)->in_value = false;
    return 0;
}

static int on_headers_complete(llhttp_t *p) {
    head_state *st = state_of(p);
    orr_http_request *req = st->req;
    req->http_minor = p->http_minor;
    req->keep_alive = llhttp_should_keep_alive(p) != 0;
    req->chunked = (p->flags & F_CHUNKED) != 0;
    req->content_length = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
    st->headers_done = true;
    /* Stop here: the head is all we were given, and whatever follows it (a
     * body, the next request, websocket frames) is the caller's business. */
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_method = on_method,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
};

/* tchar of RFC 9110 5.6.2. */
static bool is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(orr_span s) {
    if (s.n == 0) return false;
    for (size_t i = 0; i < s.n; i++)
        if (!is_tchar((unsigned char)s.p[i])) return false;
    return true;
}

static bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

static orr_span trim(orr_span s) {
    while (s.n && is_ows(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n && is_ows(s.p[s.n - 1]))
        s.n--;
    return s;
}

/* Every LF must end a CRLF. llhttp takes a bare LF after the request line but
 * not after a header; we refuse both, since lenient line endings are where
 * request smuggling through a proxy starts (RFC 9112 2.2 makes accepting
 * them optional). */
static bool crlf_only(const char *buf, size_t len) {
    const char *p = buf, *end = buf + len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        if (p == buf || p[-1] != '\r') return false;
        p++;
    }
    return true;
}

/* The checks after llhttp: what it accepts but a server should not. */
static int check_head(orr_http_request *req, const llhttp_t *p) {
    if (p->http_major != 1 || p->http_minor > 1)
        return ORR_HTTP_EBAD; /* 0.9, 2.0 and 3.0 pass llhttp's grammar */
    /* RFC 9112 6.3: a request with a transfer coding other than a final
     * chunked has no knowable length. llhttp tests this after
     * on_headers_complete, which we stopped in. */
    if ((p->flags & F_TRANSFER_ENCODING) && !(p->flags & F_CHUNKED)) return ORR_HTTP_EBAD;

    for (size_t i = 0; i < req->n_headers; i++) {
        orr_http_header *h = &req->headers[i];
        /* llhttp lets "Host : x" through with the space in the name; RFC
         * 9112 5.1 says a server must reject it. */
        if (!is_token(h->name)) return ORR_HTTP_EBAD;
        if (h->value.p == NULL) h->value.p = h->name.p + h->name.n; /* empty, but never NULL */
        h->value = trim(h->value);
        if (memchr(h->value.p, '\r', h->value.n) || memchr(h->value.p, '\n', h->value.n))
            return ORR_HTTP_EBAD;
    }

    /* Only origin-form ("/path?query"): Orrery is no proxy (absolute-form),
     * tunnels nothing (authority-form) and has no use for OPTIONS "*". A
     * fragment is not part of any request-target. */
    orr_span t = req->target;
    if (t.n == 0 || t.p[0] != '/' || memchr(t.p, '#', t.n)) return ORR_HTTP_EBAD;
    const char *q = memchr(t.p, '?', t.n);
    req->path.p = t.p;
    req->path.n = q ? (size_t)(q - t.p) : t.n;
    req->query.p = q ? q + 1 : t.p + t.n;
    req->query.n = q ? t.n - req->path.n - 1 : 0;
    return 0;
}

int orr_http_parse_head(const char *buf, size_t len, orr_http_request *req) {
    memset(req, 0, offsetof(orr_http_request, headers));
    if (!crlf_only(buf, len)) return ORR_HTTP_EBAD;

    head_state st = {.req = req};
    llhttp_t parser;
    llhttp_init(&parser, HTTP_REQUEST, &settings);
    parser.data = &st;
    llhttp_errno_t e = llhttp_execute(&parser, buf, len);
    if (st.too_many) return ORR_HTTP_ETOOLARGE;
    /* Success is a pause in on_headers_complete exactly at the end of the
     * head: stopping earlier would leave bytes of the head unparsed. */
    if (e != HPE_PAUSED || !st.headers_done || llhttp_get_error_pos(&parser) != buf + len)
        return ORR_HTTP_EBAD;
    return check_head(req, &parser);
}

static char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool span_eq_nocase(orr_span s, const char *z, size_t zn) {
    if (s.n != zn) return false;
    for (size_t i = 0; i < zn; i++)
        if (lower(s.p[i]) != lower(z[i])) return false;
    return true;
}

const orr_span *orr_http_header_get(const orr_http_request *req, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < req->n_headers; i++)
        if (span_eq_nocase(req->headers[i].name, name, n)) return &req->headers[i].value;
    return NULL;
}

size_t orr_http_header_count(const orr_http_request *req, const char *name) {
    size_t n = strlen(name), count = 0;
    for (size_t i = 0; i < req->n_headers; i++)
        if (span_eq_nocase(req->headers[i].name, name, n)) count++;
    return count;
}

/* One comma-separated list: elements are trimmed, empty ones skipped
 * (RFC 9110 5.6.1 asks recipients to accept "a, , b"). */
static bool list_has(orr_span v, const char *token, size_t tn) {
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        orr_span el = trim((orr_span){p, (size_t)(stop - p)});
        if (span_eq_nocase(el, token, tn)) return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

int orr_http_header_has_token(const orr_http_request *req, const char *name, const char *token) {
    size_t nn = strlen(name), tn = strlen(token);
    for (size_t i = 0; i < req->n_headers; i++)
        if (span_eq_nocase(req->headers[i].name, name, nn) &&
            list_has(req->headers[i].value, token, tn))
            return 1;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decoding never writes ahead of reading, so out may be in (in place). */
long orr_url_decode(const char *in, size_t n, char *out, bool plus) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            if (n - i < 3) return -1;
            int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = (char)(h << 4 | l);
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        out[o++] = c;
    }
    return (long)o;
}
