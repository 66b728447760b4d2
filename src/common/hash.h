/*
 * FNV-1a over bytes: for tables whose keys come from this process or from
 * trusted peers (Redis channel names, pool names). Tables keyed by what a
 * client chooses use a keyed hash instead (the registry's SipHash).
 */
#ifndef ORR_COMMON_HASH_H
#define ORR_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

#define ORR_FNV_OFFSET 1469598103934665603ull

/* Continues the hash h (start with ORR_FNV_OFFSET) over n bytes at p. */
static inline uint64_t orr_fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

#endif
