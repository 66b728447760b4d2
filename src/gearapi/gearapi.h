/*
 * src/gearapi: the only place that implements include/orrery/gear.h: what a
 * gear may do with its connection (conn_api.c), the handshake object it
 * sees in connect (handshake.c), and the registry operations with their
 * results (registry_api.c).
 *
 * It works on a connection and its worker's state (conn/conn.h); what it
 * needs of the node beyond them (the registry table, the backend, the
 * mailboxes) comes through gear_host, which the server fills at start.
 */
#ifndef ORR_GEARAPI_GEARAPI_H
#define ORR_GEARAPI_GEARAPI_H

#include "conn/conn.h"
#include "http/router.h"
#include "registry/backend.h"
#include "registry/registry.h"

/* The node as the gear API needs it (conn_node.gears points to it). The
 * functions are called on the calling connection's worker. */
typedef struct gear_host {
    orr_registry *registry; /* the node's table */
    orr_backend *backend;   /* where operations go beyond it */
    /* Whether this node delivers to `name` of r's pool by itself (a
     * confirmed local holder, while the backend lets it): *to is it. */
    bool (*local_holder)(conn_worker *w, const conn_route *r, const char *name, size_t len,
                         uint64_t *to);
    /* Hands m to connection `to` on any worker (no reference taken): false
     * when that worker's mailbox is full. */
    bool (*post)(conn_worker *w, uint64_t to, orr_payload *m);
    /* Delivers msg to the members of `group` of r's pool on this node: how many. */
    size_t (*publish)(conn_worker *w, const conn_route *r, const char *group, size_t len,
                      const void *msg, size_t msg_len);
} gear_host;

/* ---- handshake.c ---- */
struct orr_handshake {
    orr_conn *c;
    const orr_http_request *req;
    orr_route_match match; /* data: the server's target for the route */
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

void hs_init(orr_handshake *hs, orr_conn *c, const orr_http_request *req, const char *ctx);
void hs_release(orr_handshake *hs);
/* Arena copy valid until hs_release. */
char *hs_alloc(orr_handshake *hs, size_t n);
/* 1 if every key and value of the query decodes (a malformed query is 400). */
int hs_query_valid(const orr_handshake *hs);

#endif
