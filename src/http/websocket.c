/*
 * The server side of the opening handshake (RFC 6455 section 4.2).
 */
#include "http/websocket.h"

#include "common/log.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* The one header of that name, or NULL when it is absent or repeated: each
 * header checked here holds a single value, and two copies must not be
 * reconciled by picking one. */
static const orr_span *single_header(const orr_http_request *req, const char *name) {
    if (orr_http_header_count(req, name) != 1) return NULL;
    return orr_http_header_get(req, name);
}

static int b64val(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* RFC 6455 4.2.1 item 5: the key is base64 of 16 bytes, which is 22
 * characters and "==". The last character carries 2 bits of data and 4 bits
 * that canonical base64 leaves zero; any encoder a client uses does, so a key
 * with them set is malformed rather than another spelling of the same 16
 * bytes. */
static bool key_valid(orr_span k) {
    if (k.n != 24 || k.p[22] != '=' || k.p[23] != '=') return false;
    for (size_t i = 0; i < 22; i++)
        if (b64val(k.p[i]) < 0) return false;
    return (b64val(k.p[21]) & 0x0f) == 0;
}

static bool span_is(orr_span s, const char *z) {
    size_t n = strlen(z);
    return s.n == n && memcmp(s.p, z, n) == 0;
}

int orr_ws_upgrade_check(const orr_http_request *req, orr_span *key) {
    /* What makes the request unfit for any upgrade comes first: a 426 would
     * invite the client to retry something that can never work. */
    if (!span_is(req->method, "GET") || req->http_minor < 1) return ORR_HTTP_EBAD;
    /* RFC 9112 3.2: a request without Host, or with two, is answered 400. */
    const orr_span *host = single_header(req, "Host");
    if (!host || host->n == 0) return ORR_HTTP_EBAD;
    /* Two Upgrade headers are not read as one list: a request that says
     * what it switches to twice is malformed (as with the key and the
     * version below, which RFC 6455 4.2.1 wants exactly once). */
    if (orr_http_header_count(req, "Upgrade") > 1) return ORR_HTTP_EBAD;

    if (!orr_http_header_has_token(req, "Upgrade", "websocket") ||
        !orr_http_header_has_token(req, "Connection", "upgrade"))
        return ORR_HTTP_ENOUPGRADE;

    /* Only 13: the drafts' versions 7 and 8 (which Antikythera accepts)
     * predate the RFC and no client in use sends them. */
    const orr_span *version = single_header(req, "Sec-WebSocket-Version");
    if (!version || !span_is(*version, "13")) return ORR_HTTP_EBAD;

    const orr_span *k = single_header(req, "Sec-WebSocket-Key");
    if (!k || !key_valid(*k)) return ORR_HTTP_EBAD;
    *key = *k;
    return 0;
}

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void orr_ws_accept_value(const char *key, size_t key_len, char out[29]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int ok;
    /* A valid key is 24 bytes, so the concatenation fits on the stack; the
     * streaming digest is for callers that pass something longer. */
    char in[128];
    size_t glen = sizeof WS_GUID - 1;
    if (key_len <= sizeof in - glen) {
        memcpy(in, key, key_len);
        memcpy(in + key_len, WS_GUID, glen);
        ok = EVP_Digest(in, key_len + glen, md, &md_len, EVP_sha1(), NULL);
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
             EVP_DigestUpdate(ctx, key, key_len) && EVP_DigestUpdate(ctx, WS_GUID, glen) &&
             EVP_DigestFinal_ex(ctx, md, &md_len);
        EVP_MD_CTX_free(ctx);
    }
    /* SHA-1 fails only when OpenSSL cannot allocate or its configuration
     * disables SHA-1; either way no handshake can ever succeed, which is the
     * out-of-memory rule of common/err.h: log and abort. */
    if (!ok || md_len != 20) {
        orr_log(ORR_LOG_ERROR, NULL, "SHA-1 unavailable from OpenSSL; aborting");
        abort();
    }
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
}

/* tchar (RFC 7230 section 3.2.6). */
static bool is_tchar(unsigned char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool is_protocol_header(orr_span name) {
    static const char want[] = "sec-websocket-protocol";
    if (name.n != sizeof want - 1) return false;
    for (size_t i = 0; i < name.n; i++) {
        char ch = name.p[i];
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        if (ch != want[i]) return false;
    }
    return true;
}

int orr_ws_protocol_next(orr_ws_protocol_iter *it, orr_span *tok) {
    const orr_http_request *req = it->req;
    for (; it->header < req->n_headers; it->header++, it->at = 0) {
        const orr_http_header *h = &req->headers[it->header];
        if (!is_protocol_header(h->name)) continue;
        const char *v = h->value.p;
        size_t n = h->value.n, i = it->at;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) /* OWS, empty elements */
            i++;
        if (i == n) continue;
        size_t start = i;
        while (i < n && is_tchar((unsigned char)v[i]))
            i++;
        if (i == start) return ORR_HTTP_EBAD;
        *tok = (orr_span){v + start, i - start};
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i < n && v[i] != ',') return ORR_HTTP_EBAD;
        it->at = i;
        return 1;
    }
    return 0;
}
