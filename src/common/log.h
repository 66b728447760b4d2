/*
 * Logs: one line per event on stderr, written with a single write(2) so lines
 * from different workers never interleave. Format:
 *   2026-11-25T19:44:18.123Z info [CONTEXT] message
 */
#ifndef ORR_COMMON_LOG_H
#define ORR_COMMON_LOG_H

#include <orrery/gear.h>
#include <stdarg.h>

/* Lines below this level are dropped (ORR_LOG_INFO by default). */
void orr_log_set_level(int level);
int orr_log_enabled(int level);
/* `ctx` is the context id, or NULL for server-wide lines. */
void orr_log(int level, const char *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void orr_vlog(int level, const char *ctx, const char *fmt, va_list ap);

#endif
