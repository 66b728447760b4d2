/*
 * Origins (RFC 6454) for the Origin allowlist (RFC 6455 section 10.2): a
 * serialized origin is normalised the way browsers write it (scheme and
 * host in lower case, the scheme's default port left out), and matched
 * against a list of exact origins and `*.example.com` patterns (any scheme
 * and port, a host that ends in `.example.com`, not `example.com` itself).
 * No I/O, no allocation.
 */
#ifndef ORR_HTTP_ORIGIN_H
#define ORR_HTTP_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

/* The longest origin kept (scheme, host and port). */
#define ORR_ORIGIN_MAX 300

/* `scheme://host[:port]` (no path, user or query; host a name, an IPv4
 * address or a [bracketed IPv6] one) into out as browsers serialise it:
 * its length, or -1 when it is not one (or does not fit in cap). "null"
 * (an opaque origin) stays "null". */
long orr_origin_normalize(const char *in, size_t n, char *out, size_t cap);

/* `*.` followed by a host name: whether p (n bytes) is such a pattern. */
bool orr_origin_pattern_valid(const char *p, size_t n);

/* Whether the normalised origin (n bytes) is in list: entries separated by
 * '\n', each a normalised origin or a pattern. "null" matches only an
 * entry "null". */
bool orr_origin_allowed(const char *list, const char *origin, size_t n);

#endif
