/*
 * permessage-deflate negotiation (RFC 7692 section 7.1): the server's answer
 * to a request's Sec-WebSocket-Extensions offers. No I/O, no allocation.
 *
 * The server takes the first acceptable permessage-deflate offer, in the
 * order offered (every Sec-WebSocket-Extensions line, as one list; other
 * extensions are ignored). An offer is declined, never answered with 400,
 * when a parameter is unknown, repeated, has a value it may not have, lacks
 * one it must have, or has a value out of range; so is a server window of
 * 8 bits, which zlib's raw deflate cannot keep to (it makes 9). Elements
 * that are not well formed are declined the same way.
 *
 * The answer always carries server_no_context_takeover and
 * client_no_context_takeover (RFC 7692 allows a server both: each message
 * is compressed and inflated on its own, so a connection keeps no zlib
 * state between messages), and server_max_window_bits when the offer
 * limited the server's window.
 */
#ifndef ORR_HTTP_DEFLATE_OFFER_H
#define ORR_HTTP_DEFLATE_OFFER_H

#include "http/request.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct orr_ws_deflate_params {
    uint8_t server_max_window_bits; /* the window the server's compressor may use: 9..15 */
    uint8_t client_max_window_bits; /* the most the client's may use: 8..15 (15 unless offered) */
} orr_ws_deflate_params;

/* 1 with *out and the response's header value (NUL-terminated, at most
 * ORR_WS_DEFLATE_RESPONSE_MAX bytes with its NUL) in resp, or 0 when no
 * offer is acceptable (or none was made). */
#define ORR_WS_DEFLATE_RESPONSE_MAX 128
int orr_ws_deflate_negotiate(const orr_http_request *req, orr_ws_deflate_params *out,
                             char resp[ORR_WS_DEFLATE_RESPONSE_MAX]);

#endif
