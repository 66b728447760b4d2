/*
 * The HTTP phase: request heads (keep-alive and pipelining), the built-in
 * pages, routing, the gear's `connect`, the protocol checks and the 101.
 *
 * Order for a websocket route: route lookup (404) -> query (400) -> the
 * gear's connect (any response; failure is 500) -> protocol checks (426,
 * 400) -> 101.
 */
#include "common/clock.h"
#include "common/log.h"
#include "conn/conn.h"
#include "http/websocket.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *http_status_text(int status) {
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return status < 300   ? "OK"
               : status < 400 ? "Redirect"
               : status < 500 ? "Client Error"
                              : "Server Error";
    }
}

/* Whether a block of "Name: value\r\n" lines has a Retry-After. */
static bool has_retry_after(const char *headers) {
    static const char name[] = "retry-after:";
    for (const char *line = headers; line && *line;) {
        if (strncasecmp(line, name, sizeof name - 1) == 0) return true;
        line = strstr(line, "\r\n");
        if (line) line += 2;
    }
    return false;
}

void http_respond_simple(conn_worker *w, orr_conn *c, int status, const char *extra_headers,
                         const char *ctype, const void *body, size_t body_len, bool keep_alive) {
    char head[512];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
    out_append(w, head, (size_t)n);
    if (extra_headers) out_append(w, extra_headers, strlen(extra_headers));
    /* Every 503 says when to come back (a pool full, too many pools, the
     * drain, a cluster that is down, or a gear's own 503), so that clients
     * do not retry at once; a gear's own Retry-After is kept. */
    if (status == 503 && !has_retry_after(extra_headers)) {
        n = snprintf(head, sizeof head, "Retry-After: %u\r\n", w->node->cfg->retry_after_s);
        out_append(w, head, (size_t)n);
    }
    n = snprintf(head, sizeof head, "%s%s%sContent-Length: %zu\r\nConnection: %s\r\n\r\n",
                 ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", body_len,
                 keep_alive ? "keep-alive" : "close");
    out_append(w, head, (size_t)n);
    if (body_len && !w->resp_no_body) out_append(w, body, body_len);
    if (!keep_alive) c->flags |= CF_CLOSE_AFTER_FLUSH;
}

void http_log_request(conn_worker *w, orr_conn *c, const orr_http_request *req, int status) {
    orr_log(ORR_LOG_INFO, conn_ctx(w, c), "%.*s %.*s status=%d", (int)req->method.n, req->method.p,
            (int)(req->path.n > 200 ? 200 : req->path.n), req->path.p, status);
}

void http_respond_text(conn_worker *w, orr_conn *c, const orr_http_request *req, int status,
                       const char *extra, const char *body, bool keep_alive) {
    http_log_request(w, c, req, status);
    http_respond_simple(w, c, status, extra, "text/plain; charset=utf-8", body, strlen(body),
                        keep_alive);
}

/* The client IP: the last X-Forwarded-For entry when it is an address,
 * else the peer. Stored in binary on the connection. */
void http_client_ip(conn_worker *w, orr_conn *c, const orr_http_request *req, char *out,
                    size_t len) {
    const orr_span *xff = NULL;
    for (size_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].name.n == 15 &&
            strncasecmp(req->headers[i].name.p, "x-forwarded-for", 15) == 0)
            xff = &req->headers[i].value;
    if (xff && xff->n) {
        const char *end = xff->p + xff->n, *start = end;
        while (start > xff->p && start[-1] != ',')
            start--;
        while (start < end && (*start == ' ' || *start == '\t'))
            start++;
        char tmp[64];
        size_t n = (size_t)(end - start);
        if (n < sizeof tmp) {
            memcpy(tmp, start, n);
            tmp[n] = '\0';
            uint8_t bytes[16];
            if (inet_pton(AF_INET, tmp, bytes) == 1) {
                c->addr.family = AF_INET;
                memcpy(c->addr.bytes, bytes, 4);
            } else if (inet_pton(AF_INET6, tmp, bytes) == 1) {
                c->addr.family = AF_INET6;
                memcpy(c->addr.bytes, bytes, 16);
            }
        }
    }
    conn_ip(w, c, out, len);
}

/* The 101 for a request whose upgrade checks passed (key: its
 * Sec-WebSocket-Key; protocol: the subprotocol chosen, or NULL;
 * extensions: the Sec-WebSocket-Extensions answer, or NULL); frames
 * written after it in this event follow it. */
void http_switch_protocols(conn_worker *w, orr_conn *c, orr_span key, const char *protocol,
                           const char *extensions) {
    (void)c;
    char accept[29];
    orr_ws_accept_value(key.p, key.n, accept);
    char head[160];
    int n =
        snprintf(head, sizeof head,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n",
                 accept);
    out_append(w, head, (size_t)n);
    if (protocol) {
        static const char name[] = "Sec-WebSocket-Protocol: ";
        out_append(w, name, sizeof name - 1);
        out_append(w, protocol, strlen(protocol));
        out_append(w, "\r\n", 2);
    }
    if (extensions) {
        static const char name[] = "Sec-WebSocket-Extensions: ";
        out_append(w, name, sizeof name - 1);
        out_append(w, extensions, strlen(extensions));
        out_append(w, "\r\n", 2);
    }
    out_append(w, "\r\n", 2);
    w->cork_frames_at = w->cork_len; /* websocket frames from here on */
}

enum head_result { HEAD_DONE, HEAD_UPGRADED, HEAD_WAIT_BODY };

static enum head_result finish_request(conn_worker *w, orr_conn *c, const orr_http_request *req,
                                       const uint8_t *body, size_t body_len) {
    bool upgraded = w->node->host->request(w, c, req, body, body_len);
    w->resp_no_body = false; /* only that request was a HEAD */
    c->flags &= (uint16_t)~CF_HTTP_REQ_STARTED;
    if (!upgraded && c->phase == PHASE_HTTP) conn_list_move(w, c, LIST_HTTP);
    return upgraded ? HEAD_UPGRADED : HEAD_DONE;
}

/* A request whose body is not read (only the push API takes one, when it
 * allows it): answered, and the connection ends after the answer. */
static void refuse_body(conn_worker *w, orr_conn *c, const orr_http_request *req, int status) {
    c->ctx_seq = ++w->ctx_seq;
    c->ctx_ms = orr_wall_ms();
    static const char *const why[] = {"request bodies are not accepted here\n",
                                      "unauthorized\n",
                                      "not found\n",
                                      "chunked bodies are not accepted; send Content-Length\n",
                                      "message too large\n",
                                      "method not allowed\n"};
    int k = status == 401   ? 1
            : status == 404 ? 2
            : status == 411 ? 3
            : status == 413 ? 4
            : status == 405 ? 5
                            : 0;
    http_log_request(w, c, req, status);
    http_respond_simple(w, c, status,
                        status == 401 ? "WWW-Authenticate: Bearer realm=\"orrery\"\r\n" : NULL,
                        "text/plain; charset=utf-8", why[k], strlen(why[k]), false);
}

/* One complete head at head[0..end), followed by `rest_n` bytes at rest:
 * parse and answer it. A request with a body is answered once the body is
 * all there: from rest when it holds it (*rest_used says how much was the
 * body), else the head and the start of the body move to c->in
 * (HEAD_WAIT_BODY). Only the push API takes a body, and it says whether
 * (authorised, small enough) before any is read: other requests with one
 * are answered and the connection closed. */
static enum head_result process_head(conn_worker *w, orr_conn *c, const uint8_t *head, size_t end,
                                     const uint8_t *rest, size_t rest_n, size_t *rest_used) {
    orr_http_request req;
    *rest_used = 0;
    int rc = orr_http_parse_head((const char *)head, end, &req);
    if (rc < 0) {
        c->ctx_seq = ++w->ctx_seq;
        c->ctx_ms = orr_wall_ms();
        int status = orr_http_status_of(rc);
        orr_log(ORR_LOG_INFO, conn_ctx(w, c), "malformed request head: status=%d", status);
        http_respond_simple(w, c, status, NULL, "text/plain", "bad request\n", 12, false);
        return HEAD_DONE;
    }
    if (!req.content_length && !req.chunked) return finish_request(w, c, &req, NULL, 0);
    int status;
    if (!w->node->host->body_wanted(w, &req, &status)) {
        refuse_body(w, c, &req, status);
        return HEAD_DONE;
    }
    size_t cl = (size_t)req.content_length;
    if (rest_n >= cl) {
        *rest_used = cl;
        return finish_request(w, c, &req, rest, cl);
    }
    if (!budget_room(w->node, end + cl)) {
        c->ctx_seq = ++w->ctx_seq;
        c->ctx_ms = orr_wall_ms();
        atomic_fetch_add_explicit(&w->node->budget_refused, 1, memory_order_relaxed);
        orr_log(ORR_LOG_WARN, conn_ctx(w, c), "memory budget: a body of %zu bytes refused", cl);
        http_log_request(w, c, &req, 503);
        http_respond_simple(w, c, 503, NULL, "text/plain; charset=utf-8", "server busy\n", 12,
                            false);
        return HEAD_DONE;
    }
    uint8_t *buf = orr_xmalloc(end + cl);
    memcpy(buf, head, end);
    memcpy(buf + end, rest, rest_n);
    conn_in_free(c); /* the head may have been in it: copied above */
    c->in = buf;
    c->in_len = (uint32_t)(end + rest_n);
    c->in_cap = (uint32_t)(end + cl);
    budget_add(w->node, c->in_cap);
    c->head_scanned = (uint32_t)end;
    c->flags |= CF_HTTP_BODY;
    *rest_used = rest_n;
    return HEAD_WAIT_BODY;
}

/* More of a body that c->in is collecting. Returns the bytes of p used;
 * once it is whole the request is answered. */
static size_t body_data(conn_worker *w, orr_conn *c, const uint8_t *p, size_t n, bool *upgraded) {
    size_t take = c->in_cap - c->in_len;
    if (take > n) take = n;
    memcpy(c->in + c->in_len, p, take);
    c->in_len += (uint32_t)take;
    if (c->in_len < c->in_cap) return take;
    orr_http_request req;
    size_t end = c->head_scanned;
    uint8_t *buf = conn_in_take(c);
    c->head_scanned = 0;
    c->flags &= (uint16_t)~CF_HTTP_BODY;
    if (orr_http_parse_head((const char *)buf, end, &req) == 0)
        *upgraded =
            finish_request(w, c, &req, buf + end, (size_t)req.content_length) == HEAD_UPGRADED;
    free(buf);
    return take;
}

static void too_large(conn_worker *w, orr_conn *c) {
    c->ctx_seq = ++w->ctx_seq;
    c->ctx_ms = orr_wall_ms();
    orr_log(ORR_LOG_INFO, conn_ctx(w, c), "request head over %d bytes: status=431",
            ORR_HTTP_MAX_HEAD);
    http_respond_simple(w, c, 431, NULL, "text/plain", "request head too large\n", 23, false);
}

static bool more_requests(const orr_conn *c) {
    return c->phase == PHASE_HTTP && !(c->flags & (CF_CLOSE_AFTER_FLUSH | CF_HTTP_WAIT));
}

/* A push request waits for the cluster: keep what followed it for later. */
static void keep_for_later(conn_worker *w, orr_conn *c, const uint8_t *p, size_t n) {
    if (!n) return;
    if (n > ORR_HTTP_MAX_HEAD) {
        too_large(w, c);
        return;
    }
    conn_in_grow(c, n);
    memcpy(c->in, p, n);
    c->in_len = (uint32_t)n;
}

/* After a head was handled, with n bytes following it at p: true when this
 * read is done with the HTTP phase (a body is awaited, or frames follow the
 * 101 in the same read and go to the websocket phase). */
static bool head_ends_read(conn_worker *w, orr_conn *c, enum head_result hr, uint8_t *p, size_t n) {
    if (hr == HEAD_WAIT_BODY) return true;
    if (hr != HEAD_UPGRADED) return false;
    if (n && c->phase == PHASE_WS) ws_on_data(w, c, p, n);
    return true;
}

/* A head began in an earlier read: complete it in c->in, taking from p
 * only what fits (what follows the head stays in p), and handle it. True
 * when this read is done; else *pp and *np are past what was used. */
static bool split_head(conn_worker *w, orr_conn *c, uint8_t **pp, size_t *np) {
    uint8_t *p = *pp;
    size_t n = *np, old = c->in_len;
    size_t room = ORR_HTTP_MAX_HEAD - old;
    size_t take = n < room ? n : room;
    memcpy(c->in + old, p, take);
    c->in_len += (uint32_t)take;
    size_t scanned = c->head_scanned;
    long end = orr_http_head_end((const char *)c->in, c->in_len, &scanned);
    if (end == 0 && c->in_len >= ORR_HTTP_MAX_HEAD) end = ORR_HTTP_ETOOLARGE;
    if (end == ORR_HTTP_ETOOLARGE) {
        conn_in_free(c);
        too_large(w, c);
        return true;
    }
    if (end == 0) {
        c->head_scanned = (uint32_t)scanned;
        return true;
    }
    size_t used = (size_t)end - old, body_used;
    p += used;
    n -= used;
    enum head_result hr = process_head(w, c, c->in, (size_t)end, p, n, &body_used);
    if (hr != HEAD_WAIT_BODY) conn_in_free(c);
    *pp = p + body_used;
    *np = n - body_used;
    return head_ends_read(w, c, hr, *pp, *np);
}

/* Whole heads (and their bodies) one after another in p; the start of a
 * head is kept until the rest arrives. */
static void read_heads(conn_worker *w, orr_conn *c, uint8_t *p, size_t n) {
    while (n > 0 && more_requests(c)) {
        c->flags |= CF_HTTP_REQ_STARTED;
        size_t scanned = 0;
        long end = orr_http_head_end((const char *)p, n, &scanned);
        if (end == ORR_HTTP_ETOOLARGE) {
            too_large(w, c);
            return;
        }
        if (end == 0) {
            conn_in_grow(c, ORR_HTTP_MAX_HEAD);
            memcpy(c->in, p, n);
            c->in_len = (uint32_t)n;
            c->head_scanned = (uint32_t)scanned;
            return;
        }
        size_t body_used;
        enum head_result hr =
            process_head(w, c, p, (size_t)end, p + end, n - (size_t)end, &body_used);
        p += (size_t)end + body_used;
        n -= (size_t)end + body_used;
        if (head_ends_read(w, c, hr, p, n)) return;
    }
    if (c->flags & CF_HTTP_WAIT) keep_for_later(w, c, p, n);
}

void http_on_data(conn_worker *w, orr_conn *c, uint8_t *p, size_t n) {
    if (!(c->flags & CF_HTTP_REQ_STARTED)) {
        c->flags |= CF_HTTP_REQ_STARTED;
        /* The head's time starts at its first byte; on TLS the first head's
         * counts from the accept, through the TLS handshake (no request has
         * set ctx_ms yet). */
        if (!(c->flags & CF_TLS) || c->ctx_ms) conn_list_move(w, c, LIST_HTTP);
    }
    if (c->flags & CF_HTTP_BODY) {
        bool upgraded = false;
        size_t used = body_data(w, c, p, n, &upgraded);
        p += used;
        n -= used;
        if (upgraded || (c->flags & CF_HTTP_BODY)) return;
    } else if (c->in_len && split_head(w, c, &p, &n)) {
        return;
    }
    read_heads(w, c, p, n);
}
