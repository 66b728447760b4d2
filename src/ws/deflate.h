/*
 * permessage-deflate's compression (RFC 7692 section 7.2), through zlib, for
 * connections that negotiated no context takeover on both sides
 * (http/deflate_offer.h): every message is compressed and inflated on its
 * own, so one compressor and one inflater per worker serve all its
 * connections, and a connection holds no zlib state at all. No I/O.
 *
 * Inflating is bounded: output comes in the chunks the caller makes room
 * for, so a small frame that inflates to gigabytes costs only what the
 * caller accepts before it stops (max_message_bytes: 1009).
 */
#ifndef ORR_WS_DEFLATE_H
#define ORR_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct orr_ws_inflater orr_ws_inflater;
typedef struct orr_ws_deflater orr_ws_deflater;

/* A corrupt deflate stream (the connection closes: 1007, RFC 7692 section
 * 8, as for invalid data). */
#define ORR_WS_EDEFLATE (-120)

/* NULL when zlib has no memory. */
orr_ws_inflater *orr_ws_inflater_new(void);
void orr_ws_inflater_free(orr_ws_inflater *z);

/* Starts a message: what was left of the previous one is dropped. */
void orr_ws_inflate_begin(orr_ws_inflater *z);

/*
 * Inflates from *in (its compressed bytes, in any pieces) into out (cap
 * bytes, at least 1): returns the bytes written (*in and *in_len advanced
 * past what was read), or ORR_WS_EDEFLATE. `last`: *in holds the message's
 * last bytes; then once all of them are read and the output is complete,
 * *done is set (the 00 00 ff ff the sender removed is put back here). Call
 * again while *in_len is not 0 or, for the last bytes, until *done.
 */
long orr_ws_inflate(orr_ws_inflater *z, const uint8_t **in, size_t *in_len, bool last, uint8_t *out,
                    size_t cap, bool *done);

/* A compressor whose window is 2^window_bits bytes (9..15): NULL when zlib
 * has no memory. */
orr_ws_deflater *orr_ws_deflater_new(int window_bits);
void orr_ws_deflater_free(orr_ws_deflater *z);

/* The most orr_ws_deflate may write for n bytes. */
size_t orr_ws_deflate_bound(const orr_ws_deflater *z, size_t n);

/* One whole message compressed into out (orr_ws_deflate_bound bytes), the
 * trailing 00 00 ff ff removed: its length. */
size_t orr_ws_deflate(orr_ws_deflater *z, const uint8_t *msg, size_t n, uint8_t *out);

#endif
