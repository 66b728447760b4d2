/*
 * Request heads from the network: the end finder (whole and in the pieces
 * reads would give), the parser, and everything the server then does with a
 * parsed head. Inputs are copied to exact-size allocations so that ASan sees
 * any read past the end.
 */
#include "http/deflate_offer.h"
#include "http/request.h"
#include "http/websocket.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
    if (!cond) abort();
}

static int span_within(orr_span s, const char *buf, size_t len) {
    return s.n == 0 ? s.p != NULL : (s.p >= buf && s.p + s.n <= buf + len);
}

/* The finder fed in pieces of `step` bytes must agree with the whole. */
static void head_end_split(const char *buf, size_t len, size_t step, long whole) {
    size_t scanned = 0;
    long r = 0;
    for (size_t have = step < len ? step : len;; have = have + step < len ? have + step : len) {
        r = orr_http_head_end(buf, have, &scanned);
        check(scanned <= have);
        if (r != 0 || have == len) break;
    }
    check(r == whole);
}

static void use_request(const orr_http_request *req, const char *buf, size_t len) {
    check(req->n_headers <= ORR_HTTP_MAX_HEADERS);
    check(req->http_minor == 0 || req->http_minor == 1);
    check(span_within(req->method, buf, len) && req->method.n > 0);
    check(span_within(req->target, buf, len) && req->target.p[0] == '/');
    check(req->path.p == req->target.p && req->path.n <= req->target.n);
    check(span_within(req->query, buf, len));
    for (size_t i = 0; i < req->n_headers; i++) {
        orr_span n = req->headers[i].name, v = req->headers[i].value;
        check(span_within(n, buf, len) && n.n > 0 && span_within(v, buf, len));
        check(!memchr(v.p, '\r', v.n) && !memchr(v.p, '\n', v.n));
        if (v.n)
            check(v.p[0] != ' ' && v.p[0] != '\t' && v.p[v.n - 1] != ' ' && v.p[v.n - 1] != '\t');
    }

    (void)orr_http_header_get(req, "Host");
    (void)orr_http_header_has_token(req, "Connection", "upgrade");
    orr_span key;
    int st = orr_ws_upgrade_check(req, &key);
    check(st == 0 || st == ORR_HTTP_EBAD || st == ORR_HTTP_ENOUPGRADE);
    if (st == 0) {
        char accept[29];
        check(key.n == 24);
        orr_ws_accept_value(key.p, key.n, accept);
        check(strlen(accept) == 28);
    }
    /* The offered subprotocols: tokens inside the buffer, then the end or
     * a refusal, and the walk always ends. */
    orr_ws_protocol_iter it = {.req = req};
    orr_span tok;
    size_t count = 0;
    while ((st = orr_ws_protocol_next(&it, &tok)) == 1) {
        check(tok.n > 0 && span_within(tok, buf, len));
        check(++count <= len);
    }
    check(st == 0 || st == ORR_HTTP_EBAD);
    /* The permessage-deflate answer: declined, or a response that fits. */
    orr_ws_deflate_params dp;
    char resp[ORR_WS_DEFLATE_RESPONSE_MAX];
    st = orr_ws_deflate_negotiate(req, &dp, resp);
    check(st == 0 || st == 1);
    if (st == 1) {
        check(strncmp(resp, "permessage-deflate; ", 20) == 0 && strlen(resp) < sizeof resp);
        check(dp.server_max_window_bits >= 9 && dp.server_max_window_bits <= 15);
        check(dp.client_max_window_bits >= 8 && dp.client_max_window_bits <= 15);
    }

    char *out = malloc(req->target.n + 1);
    long d = orr_url_decode(req->path.p, req->path.n, out, false);
    check(d >= -1 && d <= (long)req->path.n);
    d = orr_url_decode(req->query.p, req->query.n, out, true);
    check(d >= -1 && d <= (long)req->query.n);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    size_t step = (size_t)(data[0] % 16) + 1;
    data++;
    size--;

    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);

    size_t scanned = 0;
    long end = orr_http_head_end(buf, size, &scanned);
    check(end == 0 || end == ORR_HTTP_ETOOLARGE || (end > 0 && (size_t)end <= size));
    check(end != 0 || size < ORR_HTTP_MAX_HEAD);
    head_end_split(buf, size, step, end);

    /* As the server does: parse the head alone, in a buffer of its size. */
    if (end > 0) {
        char *head = malloc((size_t)end);
        memcpy(head, buf, (size_t)end);
        orr_http_request *req = malloc(sizeof *req);
        int rc = orr_http_parse_head(head, (size_t)end, req);
        check(rc == 0 || rc == ORR_HTTP_EBAD || rc == ORR_HTTP_ETOOLARGE);
        if (rc == 0) use_request(req, head, (size_t)end);
        free(req);
        free(head);
    }

    /* And whatever the finder says, the parser takes any bytes safely. */
    orr_http_request *req = malloc(sizeof *req);
    if (orr_http_parse_head(buf, size, req) == 0) use_request(req, buf, size);
    free(req);
    free(buf);
    return 0;
}
