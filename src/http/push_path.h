/*
 * The push API's paths (no I/O, no allocation):
 *   /_orrery/pools/<pool>/unique/<name>/messages
 *   /_orrery/pools/<pool>/groups/<group>/messages
 * Segments are percent-decoded (a pool is written gear:chat or gear%3Achat);
 * the pool must be a pool name (http/pool_name.h), the name 1..ORR_NAME_MAX
 * bytes.
 */
#ifndef ORR_HTTP_PUSH_PATH_H
#define ORR_HTTP_PUSH_PATH_H

#include <stdbool.h>
#include <stddef.h>

#define ORR_PUSH_PREFIX "/_orrery/"

typedef struct orr_push_path {
    char buf[1024]; /* the decoded segments; pool and name point into it */
    const char *pool;
    size_t pool_len;
    const char *name;
    size_t name_len;
    bool unique; /* unique/<name>, else groups/<group> */
} orr_push_path;

/* Whether the path starts with ORR_PUSH_PREFIX (a request for the push API). */
bool orr_push_path_is(const char *path, size_t len);
/* Parses a whole path: 0, or ORR_ENOTFOUND for any other shape (404). */
int orr_push_path_parse(const char *path, size_t len, orr_push_path *out);

#endif
