/*
 * The websocket upgrade: protocol checks on a parsed request and the
 * Sec-WebSocket-Accept value (SHA-1 and base64 from OpenSSL).
 */
#ifndef ORR_HTTP_WEBSOCKET_H
#define ORR_HTTP_WEBSOCKET_H

#include "http/request.h"

/*
 * Check a request for a websocket upgrade (RFC 6455 section 4.2.1).
 * Returns 0 when it is valid (and *key is the Sec-WebSocket-Key),
 * ORR_HTTP_ENOUPGRADE (426) when Upgrade: websocket or Connection: upgrade is
 * missing (answer with Upgrade: websocket), ORR_HTTP_EBAD (400) when the key
 * is missing or malformed (not base64
 * of 16 bytes), the version is not 13 (answer with Sec-WebSocket-Version: 13),
 * the method is not GET or the request is not HTTP/1.1, and when Host,
 * Upgrade, Sec-WebSocket-Key or Sec-WebSocket-Version appears twice.
 */
int orr_ws_upgrade_check(const orr_http_request *req, orr_span *key);

/*
 * The subprotocols a request offers: every Sec-WebSocket-Protocol line, in
 * order, as one comma-separated list (RFC 6455 section 11.3.4; empty
 * elements are skipped, RFC 7230 section 7). Start with it zeroed and
 * req set; each call gives the next: 1 with *tok, 0 at the end, or
 * ORR_HTTP_EBAD when an element is not a token (400).
 */
typedef struct orr_ws_protocol_iter {
    const orr_http_request *req;
    size_t header, at;
} orr_ws_protocol_iter;
int orr_ws_protocol_next(orr_ws_protocol_iter *it, orr_span *tok);

/* accept = base64(SHA-1(key ++ GUID)): 28 characters plus NUL. */
void orr_ws_accept_value(const char *key, size_t key_len, char out[29]);

#endif
