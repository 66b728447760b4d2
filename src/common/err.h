/*
 * One error convention for all of Orrery: functions return 0 (or a count or
 * length) on success and a negative code on failure. The codes are those of
 * <orrery/gear.h> (ORR_E*, -1..-99), plus each module's own ranges:
 * ws/frame.h -100.., http/request.h -200... ORR_EAGAIN means "try again".
 *
 * Out of memory: small internal allocations go through orr_xmalloc and
 * friends, which log and abort: a server that cannot allocate a few bytes
 * cannot keep its promises. Allocations whose size a peer controls are
 * bounded by configuration first (max_message_bytes, the outbound cap) and
 * checked; over a bound is ORR_ENOMEM, answered on the wire, never an abort.
 */
#ifndef ORR_COMMON_ERR_H
#define ORR_COMMON_ERR_H

#include <orrery/gear.h>
#include <stddef.h>

/* What a code of <orrery/gear.h> means. A module's own codes have their
 * own function (orr_ws_strerror, orr_http_strerror): common/ knows nothing
 * above it. */
const char *orr_strerror(int err);

/* Format a message into the caller's err buffer (if any) and return `code`:
 * the usual tail of a function that explains its failures. */
int orr_errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void *orr_xmalloc(size_t n);
void *orr_xcalloc(size_t count, size_t n);
void *orr_xrealloc(void *p, size_t n);
char *orr_xstrdup(const char *s);

#define ORR_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define ORR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
