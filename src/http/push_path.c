#include "http/push_path.h"

#include "common/err.h"
#include "http/pool_name.h"
#include "http/request.h"

#include <string.h>

bool orr_push_path_is(const char *path, size_t len) {
    return len >= sizeof ORR_PUSH_PREFIX - 1 &&
           memcmp(path, ORR_PUSH_PREFIX, sizeof ORR_PUSH_PREFIX - 1) == 0;
}

static bool seg_is(const char *p, size_t n, const char *lit) {
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* "pools/<pool>/<kind>/<name>/messages", each segment decoded in place:
 * exactly five non-empty segments. */
static bool split(char *buf, size_t n, char *seg[5], size_t len[5]) {
    size_t k = 0;
    char *p = buf, *end = buf + n;
    for (;;) {
        if (k == 5) return false;
        char *slash = memchr(p, '/', (size_t)(end - p));
        char *e = slash ? slash : end;
        long d = orr_url_decode(p, (size_t)(e - p), p, false);
        if (d <= 0) return false;
        seg[k] = p;
        len[k++] = (size_t)d;
        if (!slash) break;
        p = slash + 1;
    }
    return k == 5;
}

int orr_push_path_parse(const char *path, size_t len, orr_push_path *out) {
    if (!orr_push_path_is(path, len)) return ORR_ENOTFOUND;
    size_t n = len - (sizeof ORR_PUSH_PREFIX - 1);
    if (n >= sizeof out->buf) return ORR_ENOTFOUND;
    memcpy(out->buf, path + sizeof ORR_PUSH_PREFIX - 1, n);
    out->buf[n] = '\0';
    char *seg[5];
    size_t sl[5];
    if (!split(out->buf, n, seg, sl) || !seg_is(seg[0], sl[0], "pools") ||
        !seg_is(seg[4], sl[4], "messages"))
        return ORR_ENOTFOUND;
    if (seg_is(seg[2], sl[2], "unique"))
        out->unique = true;
    else if (seg_is(seg[2], sl[2], "groups"))
        out->unique = false;
    else
        return ORR_ENOTFOUND;
    if (orr_pool_name_check(seg[1], sl[1]) < 0 || sl[3] > ORR_NAME_MAX) return ORR_ENOTFOUND;
    out->pool = seg[1];
    out->pool_len = sl[1];
    out->name = seg[3];
    out->name_len = sl[3];
    return 0;
}
