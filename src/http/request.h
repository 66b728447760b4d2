/*
 * HTTP/1.1 request heads, parsed with llhttp. A head is first located with
 * orr_http_head_end (so that it is contiguous in one buffer), then parsed
 * whole: every span points into the caller's buffer. No I/O, no allocation.
 */
#ifndef ORR_HTTP_REQUEST_H
#define ORR_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ORR_HTTP_MAX_HEAD 8192
#define ORR_HTTP_MAX_HEADERS 100

/* Errors, each with the status that answers it. */
enum {
    ORR_HTTP_EBAD = -200,      /* malformed request -> 400 */
    ORR_HTTP_ETOOLARGE = -201, /* head over 8 KiB or over 100 headers -> 431 */
    ORR_HTTP_ENOUPGRADE = -202 /* a websocket route asked without an upgrade -> 426 */
};

/* The status that answers an ORR_HTTP_E* code (400 for any other). */
int orr_http_status_of(int err);

/* What a parser error means, for logs; NULL for a code that is not one. */
const char *orr_http_strerror(int err);

typedef struct orr_span {
    const char *p;
    size_t n;
} orr_span;

typedef struct orr_http_header {
    orr_span name, value; /* value without surrounding whitespace */
} orr_http_header;

typedef struct orr_http_request {
    orr_span method;
    orr_span target;         /* as sent: path plus optional '?' query */
    orr_span path;           /* target up to '?' (still percent-encoded) */
    orr_span query;          /* after '?', empty if none */
    int http_minor;          /* 1.x: 0 or 1 */
    bool keep_alive;         /* llhttp's verdict for this request */
    bool chunked;            /* Transfer-Encoding: chunked */
    uint64_t content_length; /* 0 if absent */
    size_t n_headers;
    orr_http_header headers[ORR_HTTP_MAX_HEADERS];
} orr_http_request;

/*
 * Find the end of a request head ("\r\n\r\n") in buf[0..len). `scanned` is how
 * many bytes an earlier call already searched (0 the first time), so that a
 * head arriving byte by byte costs linear time. Returns the head's length
 * (including the blank line), 0 if more bytes are needed (and *scanned is
 * updated), or ORR_HTTP_ETOOLARGE once ORR_HTTP_MAX_HEAD bytes hold no end.
 */
long orr_http_head_end(const char *buf, size_t len, size_t *scanned);

/* Parse a complete head of `len` bytes. Returns 0, ORR_HTTP_EBAD or
 * ORR_HTTP_ETOOLARGE (more than ORR_HTTP_MAX_HEADERS headers). */
int orr_http_parse_head(const char *buf, size_t len, orr_http_request *req);

/* First header of that name (case-insensitive), NULL if none. */
const orr_span *orr_http_header_get(const orr_http_request *req, const char *name);
/* How many headers have that name (case-insensitive). */
size_t orr_http_header_count(const orr_http_request *req, const char *name);
/* 1 if any header of that name holds `token` in its comma-separated list
 * (case-insensitive), e.g. Connection: keep-alive, Upgrade. */
int orr_http_header_has_token(const orr_http_request *req, const char *name, const char *token);

/* Percent-decode (and '+' to space when `plus`) into out (at least n bytes;
 * out may be in). Returns the decoded length or -1 on a malformed escape. */
long orr_url_decode(const char *in, size_t n, char *out, bool plus);

#endif
