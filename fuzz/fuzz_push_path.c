/*
 * The push API's path parser against paths from the network. The path is
 * copied to an exact-size allocation so that ASan sees any read past its
 * end; a parsed path must point inside its own buffer and obey the rules it
 * promises (a valid pool name, a name of 1..ORR_NAME_MAX bytes).
 */
#include "http/push_path.h"

#include "common/err.h"
#include "http/pool_name.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* As the request parser hands it over: after the prefix. */
    size_t n = sizeof ORR_PUSH_PREFIX - 1 + size;
    char *path = malloc(n);
    memcpy(path, ORR_PUSH_PREFIX, sizeof ORR_PUSH_PREFIX - 1);
    if (size) memcpy(path + sizeof ORR_PUSH_PREFIX - 1, data, size);
    orr_push_path pp;
    int rc = orr_push_path_parse(path, n, &pp);
    check(rc == 0 || rc == ORR_ENOTFOUND);
    if (rc == 0) {
        const char *lo = pp.buf, *hi = pp.buf + sizeof pp.buf;
        check(pp.pool >= lo && pp.pool + pp.pool_len <= hi);
        check(pp.name >= lo && pp.name + pp.name_len <= hi);
        check(orr_pool_name_check(pp.pool, pp.pool_len) == 0);
        check(pp.name_len >= 1 && pp.name_len <= ORR_NAME_MAX);
    }
    /* The raw bytes as a whole path, too. */
    char *raw = malloc(size ? size : 1);
    if (size) memcpy(raw, data, size);
    rc = orr_push_path_parse(raw, size, &pp);
    check(rc == 0 || rc == ORR_ENOTFOUND);
    free(raw);
    free(path);
    return 0;
}
