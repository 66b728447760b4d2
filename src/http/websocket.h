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

/* accept = base64(SHA-1(key ++ GUID)): 28 characters plus NUL. */
void orr_ws_accept_value(const char *key, size_t key_len, char out[29]);

#endif
