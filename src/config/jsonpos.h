/*
 * Where things are in a JSON text. Jansson keeps no positions, so the config
 * loader walks the raw text a second time with this scanner to find the line
 * and column of a key or a value when it has something to say about it.
 *
 * The scanner does no I/O and allocates nothing: it reads `len` bytes of
 * `text` (no NUL terminator needed) and reports through a callback. It is a
 * locator, not a validator: jansson has the final word on syntax, and on text
 * it cannot follow the walk simply stops with ORR_EINVAL.
 *
 * Lines and columns are 1-based. Columns count UTF-8 characters, not bytes,
 * the way jansson counts them, so our positions and jansson's agree.
 */
#ifndef ORR_CONFIG_JSONPOS_H
#define ORR_CONFIG_JSONPOS_H

#include <stddef.h>

/* Containers nested deeper than this end the walk with ORR_EINVAL (jansson's
 * own limit is 2048). */
#define ORR__JSONPOS_MAX_NESTING 2048
/* Members this deep or deeper are walked over but not reported. */
#define ORR__JSONPOS_MAX_PATH 32

typedef struct orr__jsonpos {
    size_t offset; /* byte offset in the text */
    unsigned line;
    unsigned col;
} orr__jsonpos;

/* A key as written: the bytes between its quotes, escapes not decoded.
 * Points into the caller's text. */
typedef struct orr__jsonpos_str {
    const char *p;
    size_t len;
} orr__jsonpos_str;

/* One object member. Valid only during the callback. */
typedef struct orr__jsonpos_member {
    const orr__jsonpos_str *path; /* keys from the top level down; path[depth - 1] is this one */
    size_t depth;
    orr__jsonpos key;   /* the key's opening quote */
    size_t key_end;     /* offset just past the key's closing quote */
    orr__jsonpos value; /* the first byte of the value */
} orr__jsonpos_member;

/* Returns 0 to go on; anything else stops the walk and is returned by it. */
typedef int (*orr__jsonpos_fn)(const orr__jsonpos_member *m, void *arg);

/*
 * Calls fn for every member of every object reached from the top level
 * through objects alone, in text order. Members inside arrays are not
 * reported (no config key lives in an array), nor are members deeper than
 * ORR__JSONPOS_MAX_PATH. Returns 0 after a complete text, fn's value if it
 * stopped the walk, or ORR_EINVAL where the text cannot be followed.
 */
int orr__jsonpos_walk(const char *text, size_t len, orr__jsonpos_fn fn, void *arg);

/*
 * The first member at `path` (`depth` decoded keys, from the top level down).
 * Returns 0 and fills *key and *value (either may be NULL), or ORR_ENOTFOUND.
 */
int orr__jsonpos_find(const char *text, size_t len, const char *const *path, size_t depth,
                      orr__jsonpos *key, orr__jsonpos *value);

/* The line and column of the byte at `offset` (offsets past the end count
 * as the end). */
orr__jsonpos orr__jsonpos_at(const char *text, size_t len, size_t offset);

/* Whether the raw key decodes to the n bytes at s. */
int orr__jsonpos_key_eq(orr__jsonpos_str raw, const char *s, size_t n);

/* Decodes a raw key into buf for a message: always NUL-terminated, cut to
 * fit. Returns the length written. */
size_t orr__jsonpos_key_decode(orr__jsonpos_str raw, char *buf, size_t n);

#endif
