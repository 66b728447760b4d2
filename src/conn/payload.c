/*
 * Payloads: a message for connections, one refcounted copy whose text
 * frame header is encoded once for every recipient.
 */
#include "common/err.h"
#include "conn/conn.h"
#include "ws/utf8.h"

#include <stdlib.h>
#include <string.h>

orr_payload *payload_new(const void *msg, size_t len) {
    orr_payload *m = orr_xmalloc(sizeof *m + PAYLOAD_HDR_ROOM + len);
    atomic_init(&m->refs, 1);
    m->len = (uint32_t)len;
    m->utf8 = orr_utf8_valid(msg, len);
    m->to_name = false;
    atomic_init(&m->z, NULL);
    uint8_t hdr[PAYLOAD_HDR_ROOM];
    m->hdr_len = (uint8_t)orr_ws_header(hdr, ORR_WS_OP_TEXT, true, len, NULL);
    memcpy(m->bytes + PAYLOAD_HDR_ROOM - m->hdr_len, hdr, m->hdr_len);
    if (len) memcpy(m->bytes + PAYLOAD_HDR_ROOM, msg, len);
    return m;
}

void payload_unref(orr_payload *m) {
    if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
    for (payload_z *z = atomic_load_explicit(&m->z, memory_order_acquire), *next; z; z = next) {
        next = z->next;
        free(z);
    }
    free(m);
}
