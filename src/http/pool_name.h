/*
 * Executor pool names, the one place their rules live (used by the config,
 * the handshake's executor_pool_for_web_request, the push API and the
 * cluster's inbox): "gear:<gear>" with a valid gear name
 * (orr_gear_name_valid), or "tenant:<id>" with 1..64 of [A-Za-z0-9_.-].
 */
#ifndef ORR_HTTP_POOL_NAME_H
#define ORR_HTTP_POOL_NAME_H

#include <stddef.h>

/* A pool name's bytes, its NUL included, are fewer than this. */
#define ORR_POOL_NAME_MAX 80

/* Whether the len bytes at name are a pool name: 0 if so, else -1. */
int orr_pool_name_check(const char *name, size_t len);

#endif
