/*
 * src/gearapi: the only place that implements include/orrery/gear.h: what a
 * gear may do with its connection (conn_api.c), the handshake object it
 * sees in connect (handshake.c), and the registry operations with their
 * results (registry_api.c).
 *
 * It works on struct orr_conn and struct orr_worker of server/internal.h,
 * an edge the layers block marks (issue 10).
 */
#ifndef ORR_GEARAPI_GEARAPI_H
#define ORR_GEARAPI_GEARAPI_H

#include "server/internal.h"

/* ---- handshake.c ---- */
struct orr_handshake {
    orr_worker *w;
    orr_conn *c;
    const orr_http_request *req;
    const orr_gear_entry *gear;
    const orr_ws_callbacks *callbacks;
    orr_pool *pool; /* a reference, and its slot from the limit check on */
    orr_route_match match;
    const char *ctx;
    char client_ip[64];
    void *assigns;
    /* connect's answer */
    int resp_status;
    char resp_headers[2048];
    size_t resp_headers_len;
    const char *resp_ctype;
    const void *resp_body;
    size_t resp_body_len;
    struct hs_block *blocks; /* NUL-terminated copies that accessors return */
    size_t inline_used;
    char inline_buf[4096];
};

void hs_init(orr_handshake *hs, orr_worker *w, orr_conn *c, const orr_http_request *req,
             const char *ctx);
void hs_release(orr_handshake *hs);
/* Arena copy valid until hs_release. */
char *hs_alloc(orr_handshake *hs, size_t n);
/* 1 if every key and value of the query decodes (a malformed query is 400). */
int hs_query_valid(const orr_handshake *hs);

#endif
