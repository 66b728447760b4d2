#include "common/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Set again on SIGHUP while workers log: relaxed atomics. */
static atomic_int min_level = ORR_LOG_INFO;

void orr_log_set_level(int level) {
    atomic_store_explicit(&min_level, level, memory_order_relaxed);
}

int orr_log_enabled(int level) {
    return level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

static const char *level_name(int level) {
    switch (level) {
    case ORR_LOG_DEBUG:
        return "debug";
    case ORR_LOG_INFO:
        return "info";
    case ORR_LOG_WARN:
        return "warn";
    default:
        return "error";
    }
}

void orr_vlog(int level, const char *ctx, const char *fmt, va_list ap) {
    if (!orr_log_enabled(level)) return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_name(level), ctx ? ctx : "-");
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    /* A line never spans two lines of the log: control characters a peer sent are escaped by
     * callers; here only stray newlines are folded. */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void orr_log(int level, const char *ctx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    orr_vlog(level, ctx, fmt, ap);
    va_end(ap);
}
