/*
 * Payloads: a message for connections, one refcounted copy whose text
 * frame header is encoded once for every recipient.
 */
#include "common/err.h"
#include "conn/conn.h"
#include "ws/utf8.h"

#include <stdlib.h>
#include <string.h>

/* extra: bytes after the payload (payload_new_to's pool index and name). */
static orr_payload *make(const void *msg, size_t len, size_t extra) {
    orr_payload *m = orr_xmalloc(sizeof *m + PAYLOAD_HDR_ROOM + len + extra);
    atomic_init(&m->refs, 1);
    m->len = (uint32_t)len;
    m->utf8 = orr_utf8_valid(msg, len);
    m->to_name = false;
    m->name_len = 0;
    atomic_init(&m->z, NULL);
    uint8_t hdr[PAYLOAD_HDR_ROOM];
    m->hdr_len = (uint8_t)orr_ws_header(hdr, ORR_WS_OP_TEXT, true, len, NULL);
    memcpy(m->bytes + PAYLOAD_HDR_ROOM - m->hdr_len, hdr, m->hdr_len);
    if (len) memcpy(m->bytes + PAYLOAD_HDR_ROOM, msg, len);
    return m;
}

orr_payload *payload_new(const void *msg, size_t len) {
    return make(msg, len, 0);
}

orr_payload *payload_new_to(const void *msg, size_t len, uint32_t pool_idx, const char *name,
                            size_t name_len) {
    orr_payload *m = make(msg, len, sizeof pool_idx + name_len);
    uint8_t *at = m->bytes + PAYLOAD_HDR_ROOM + len;
    memcpy(at, &pool_idx, sizeof pool_idx);
    memcpy(at + sizeof pool_idx, name, name_len);
    m->to_name = true;
    m->name_len = (uint16_t)name_len;
    return m;
}

orr_payload *payload_to_name(const void *msg, size_t len, bool parks, uint32_t pool_idx,
                             const char *name, size_t name_len) {
    if (parks) return payload_new_to(msg, len, pool_idx, name, name_len);
    orr_payload *m = make(msg, len, 0);
    m->to_name = true;
    return m;
}

size_t payload_name(const orr_payload *m, uint32_t *pool_idx, const char **name) {
    if (!m->name_len) return 0;
    const uint8_t *at = m->bytes + PAYLOAD_HDR_ROOM + m->len;
    memcpy(pool_idx, at, sizeof *pool_idx);
    *name = (const char *)at + sizeof *pool_idx;
    return m->name_len;
}

void payload_unref(orr_payload *m) {
    if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
    for (payload_z *z = atomic_load_explicit(&m->z, memory_order_acquire), *next; z; z = next) {
        next = z->next;
        free(z);
    }
    free(m);
}
