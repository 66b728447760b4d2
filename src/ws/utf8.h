/*
 * Streaming UTF-8 validator (RFC 3629): state carries across calls, so a code
 * point may be split anywhere between chunks, frames or reads. ASCII runs are
 * skipped eight bytes at a time. No allocation, no I/O.
 */
#ifndef ORR_WS_UTF8_H
#define ORR_WS_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* States: ORR_UTF8_ACCEPT between code points; ORR_UTF8_REJECT once invalid
 * (sticky); anything else is "inside a code point". */
enum { ORR_UTF8_ACCEPT = 0, ORR_UTF8_REJECT = 1 };

/*
 * Feed `len` bytes. Returns the new state. On REJECT, *bad_off (if not NULL)
 * is set to the offset in `s` of the first byte that made the input invalid,
 * i.e. the earliest point at which no continuation could make it valid.
 */
uint32_t orr_utf8_feed(uint32_t state, const uint8_t *s, size_t len, size_t *bad_off);

/* Whole-buffer convenience: 1 if `s` is complete, valid UTF-8. */
int orr_utf8_valid(const uint8_t *s, size_t len);

#endif
