/*
 * The connection half of <orrery/gear.h>: what a gear may do with its
 * connection from inside its callbacks.
 */
#include "common/log.h"
#include "conn/conn.h"
#include "gearapi/gearapi.h"
#include "ws/utf8.h"

#include <stdio.h>
#include <string.h>

static const char *reason_words[] = {
    [ORR_REASON_REMOTE] = "remote",     [ORR_REASON_TIMEOUT] = "timeout",
    [ORR_REASON_STOP] = "stop",         [ORR_REASON_CLOSED] = "closed",
    [ORR_REASON_BADFRAME] = "badframe", [ORR_REASON_BADENCODING] = "badencoding",
    [ORR_REASON_BADSIZE] = "badsize",   [ORR_REASON_ERROR] = "error",
    [ORR_REASON_SLOW] = "slow",         [ORR_REASON_OVERLOAD] = "overload",
};

const char *orr_reason_name(orr_reason_kind kind) {
    return (unsigned)kind < ORR_ARRAY_LEN(reason_words) ? reason_words[kind] : "unknown";
}

uint64_t orr_conn_id(const orr_conn *c) {
    return c->id;
}

const char *orr_conn_context_id(const orr_conn *c) {
    return conn_ctx(c->w, c);
}

const char *orr_conn_gear_name(const orr_conn *c) {
    return c->route ? c->route->gear : "";
}

const char *orr_conn_client_ip(const orr_conn *c) {
    return conn_ip(c->w, c, c->w->ip_buf, sizeof c->w->ip_buf);
}

void *orr_conn_assigns(const orr_conn *c) {
    return c->assigns;
}

const orr_handshake *orr_conn_handshake(const orr_conn *c) {
    return c->w->cb_conn == c ? c->w->cb_hs : NULL;
}

/* Sends are allowed only from this connection's own running callback, and
 * not once a close is queued. */
static int may_send(const orr_conn *c) {
    const conn_worker *w = c->w;
    if (w->cb_conn != c) return ORR_ESTATE;
    if (w->cb_closed || (c->flags & CF_CLOSE_SENT)) return ORR_ECLOSED;
    return 0;
}

static int send_data(orr_conn *c, uint8_t opcode, const void *data, size_t len) {
    int rc = may_send(c);
    if (rc) return rc;
    if (!data && len) return ORR_EINVAL;
    conn_worker *w = c->w;
    /* Text the gear echoes back was validated on the way in. */
    if (opcode == ORR_WS_OP_TEXT && !(data == w->cb_msg && len == w->cb_msg_len) &&
        !orr_utf8_valid(data, len))
        return ORR_EINVAL;
    const orr_payload *m =
        w->cb_payload && data == w->cb_msg && len == w->cb_msg_len ? w->cb_payload : NULL;
    if (c->deflate_bits && ws_deflates(c, len)) {
        ws_out_data(w, c, opcode, data, len, m);
    } else if (m && opcode == ORR_WS_OP_TEXT && len <= out_frag_bytes(w)) {
        /* A server message passed on as it is: its frame was encoded once
         * for every recipient. */
        out_append(w, m->bytes + PAYLOAD_HDR_ROOM - m->hdr_len, m->hdr_len + len);
        if (len > w->cork_big) w->cork_big = len;
    } else {
        out_frame(w, opcode, data, len);
    }
    c->frames_sent++;
    return 0;
}

int orr_conn_send_text(orr_conn *c, const void *data, size_t len) {
    return send_data(c, ORR_WS_OP_TEXT, data, len);
}

int orr_conn_send_binary(orr_conn *c, const void *data, size_t len) {
    return send_data(c, ORR_WS_OP_BINARY, data, len);
}

int orr_conn_close(orr_conn *c, uint16_t code, const char *reason, size_t reason_len) {
    int rc = may_send(c);
    if (rc) return rc;
    if (code == 0 && reason_len) return ORR_EINVAL;
    if (code && !orr_ws_close_code_sendable(code)) return ORR_EINVAL;
    if (reason_len > 123 || (reason_len && !reason) ||
        !orr_utf8_valid((const uint8_t *)reason, reason_len))
        return ORR_EINVAL;
    uint8_t payload[125];
    size_t n = 0;
    if (code) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        if (reason_len) memcpy(payload + 2, reason, reason_len);
        n = 2 + reason_len;
    }
    out_frame(c->w, ORR_WS_OP_CLOSE, payload, n);
    c->w->cb_closed = true; /* run_callback finishes the close when the callback returns */
    return 0;
}

void orr_conn_log(const orr_conn *c, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    orr_vlog(level, conn_ctx(c->w, c), fmt, ap);
    va_end(ap);
}
