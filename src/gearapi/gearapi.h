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
    /* c took `name`, parked with kept messages (ORR_REGISTRY_RESTORING):
     * they reach it after the running callback and its results, before
     * any live message (the server's restore item). */
    void (*restore)(conn_worker *w, orr_conn *c, const char *name, size_t len);
} gear_host;

/* ---- loader.c: versions, copies, shared objects ---- */
/* Whether a gear built against api_version can be served: 0, or
 * ORR_EINVAL with why (another major version, or a newer minor one). */
int gear_version_check(int api_version, char *why, size_t cap);
/* A gear as the server keeps it: a full-size copy of what the gear's own
 * version declared (fields added after it are zero), with its routes and
 * their callbacks copied too. Strings still point into the gear. */
typedef struct gear_copy {
    orr_gear gear; /* gear.ws_routes points to routes */
    orr_ws_route *routes;
    orr_ws_callbacks *callbacks; /* [n_ws_routes]: routes[i].callbacks */
} gear_copy;
/* Checks g (version, name, routes) and copies it: 0, or ORR_EINVAL with why. */
int gear_copy_make(const orr_gear *g, gear_copy *out, char *why, size_t cap);
void gear_copy_free(gear_copy *c);

/* A gear loaded from a shared object (its own copy of the file: two loads
 * of one path are two objects). */
typedef struct gear_lib gear_lib;
/* Loads the file and checks its gear: NULL with why ("dlopen: ...", "no
 * orr_gear_entry: not a gear", a version or shape refused). Calls no hook. */
gear_lib *gear_lib_open(const char *path, char *why, size_t cap);
/* Its checked copy, valid until gear_lib_close. */
const orr_gear *gear_lib_gear(const gear_lib *l);
/* Unloads it (calls no hook). l may be NULL. */
void gear_lib_close(gear_lib *l);

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
    const char *subprotocol;         /* the gear's choice (an arena copy), or NULL */
    const char *refused_subprotocol; /* one it chose that the client did not offer */
    struct hs_block *blocks;         /* NUL-terminated copies that accessors return */
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
