#include "common/err.h"

#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *orr_strerror(int err) {
    switch (err) {
    case ORR_OK:
        return "ok";
    case ORR_EAGAIN:
        return "try again";
    case ORR_EINVAL:
        return "invalid argument";
    case ORR_ENOMEM:
        return "out of memory or over a limit";
    case ORR_ECLOSED:
        return "connection closing";
    case ORR_ENOTFOUND:
        return "not found";
    case ORR_ETAKEN:
        return "taken";
    case ORR_ESTATE:
        return "not allowed here";
    case ORR_EFAIL:
        return "failed";
    case ORR_ENOTSUP:
        return "not supported";
    default:
        return "unknown error";
    }
}

static void *oom(size_t n) {
    orr_log(ORR_LOG_ERROR, NULL, "out of memory allocating %zu bytes; aborting", n);
    abort();
}

void *orr_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    return p ? p : oom(n);
}

void *orr_xcalloc(size_t count, size_t n) {
    void *p = calloc(count ? count : 1, n ? n : 1);
    return p ? p : oom(count * n);
}

void *orr_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom(n);
}

char *orr_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(orr_xmalloc(n), s, n);
}

int orr_errf(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
