/*
 * The websocket phase: frames in, messages to the gear, control frames
 * answered, the close handshake, and gear callbacks run in their context.
 */
#include "common/log.h"
#include "conn/conn.h"
#include "ws/utf8.h"

#include <stdlib.h>
#include <string.h>

enum cb_kind { CB_INIT, CB_CLIENT, CB_SERVER, CB_RESULT };

static const char *cb_names[] = {"init", "on_client_message", "on_server_message",
                                 "on_registry_result"};

/* One event for a gear callback: each kind uses its own fields. */
typedef struct cb_event {
    enum cb_kind kind;
    int opcode;                        /* CB_CLIENT */
    const uint8_t *data;               /* CB_CLIENT, CB_SERVER: the message */
    size_t len;                        /* its length */
    const orr_payload *payload;        /* CB_SERVER: the shared payload it is in */
    const orr_registry_result *result; /* CB_RESULT */
} cb_event;

/* Calls the gear's callback for ev (a missing one succeeds), with the
 * context the gear API checks (w->cb_*) set for its time. */
static int call_gear(conn_worker *w, orr_conn *c, const cb_event *ev) {
    const orr_ws_callbacks *cb = c->route->callbacks;
    int rc = 0;
    switch (ev->kind) {
    case CB_INIT:
        if (cb->init) rc = cb->init(c, &c->state);
        break;
    case CB_CLIENT:
        w->cb_msg = ev->data;
        w->cb_msg_len = ev->len;
        if (cb->on_client_message)
            rc = cb->on_client_message(c, &c->state, ev->opcode, ev->data, ev->len);
        w->cb_msg = NULL;
        break;
    case CB_SERVER:
        if (ev->payload->utf8) { /* a gear passing it on as text needs no check */
            w->cb_msg = ev->data;
            w->cb_msg_len = ev->len;
            w->cb_payload = ev->payload;
        }
        if (cb->on_server_message) rc = cb->on_server_message(c, &c->state, ev->data, ev->len);
        w->cb_msg = NULL;
        w->cb_payload = NULL;
        break;
    case CB_RESULT:
        if (cb->on_registry_result) rc = cb->on_registry_result(c, &c->state, ev->result);
        break;
    }
    return rc;
}

/* After a callback of c returned: the registry results it produced that
 * the backend answered at once (w->results), each through
 * on_registry_result, in the order the gear asked. */
static void run_results(conn_worker *w, orr_conn *c) {
    if (w->in_results) return; /* the outer call runs them */
    w->in_results = true;
    w->cb_hs = NULL; /* the handshake was for init only */
    while (w->results_at < w->n_results) {
        if (c->phase != PHASE_WS || (c->flags & CF_CLOSE_SENT)) break;
        /* Copied out: the callback may queue more and move the array. */
        reg_pending p = w->results[w->results_at++];
        if (p.conn != c->id) continue;
        p.r.name = p.name;
        ws_run_result(w, c, &p.r);
    }
    w->n_results = w->results_at = 0;
    w->in_results = false;
}

/*
 * Run one gear callback with Antikythera's failure semantics: on failure
 * the frames it queued are dropped, the state it had is kept for terminate,
 * an empty close goes out and terminate gets ERROR. A close the callback
 * queued takes effect (and terminate runs) only after it returns.
 */
static void run_callback(conn_worker *w, orr_conn *c, const cb_event *ev) {
    size_t mark = w->cork_len;
    uint32_t sent = c->frames_sent;
    void *before = c->state;
    w->cb_conn = c;
    w->cb_closed = false;
    int rc = call_gear(w, c, ev);
    w->cb_conn = NULL;
    bool closed = w->cb_closed;
    w->cb_closed = false;
    if (rc < 0) {
        w->cork_len = mark;
        c->frames_sent = sent;
        c->state = before;
        orr_log(ORR_LOG_ERROR, conn_ctx(w, c), "gear %s: %s failed: %s", c->route->gear,
                cb_names[ev->kind], orr_strerror(rc));
        conn_send_close(w, c, 0, NULL, 0, ORR_REASON_ERROR);
        run_results(w, c); /* drops them: c is closing */
        return;
    }
    if (closed) {
        /* The close frame is in the cork already; now the state follows. */
        c->flags |= CF_CLOSE_SENT;
        c->phase = PHASE_CLOSING;
        conn_list_move(w, c, LIST_CLOSING);
        if (c->flags & CF_CLOSE_RECEIVED) c->flags |= CF_CLOSE_AFTER_FLUSH;
        conn_terminate(w, c, ORR_REASON_STOP, NULL, 0);
    }
    run_results(w, c);
}

void ws_start(conn_worker *w, orr_conn *c, const orr_handshake *hs, void *assigns) {
    c->phase = PHASE_WS;
    c->flags |= CF_SESSION;
    c->flags &= (uint16_t)~CF_HTTP_REQ_STARTED;
    /* c->route is set by the caller: the route bound to its pool. */
    c->assigns = assigns;
    uint64_t max = w->node->cfg->max_message_bytes;
    /* With permessage-deflate the reader bounds the bytes on the wire, which
     * for incompressible data are a little more than the message (stored
     * blocks): inflating bounds the message itself, and on_data_chunk
     * holds plain messages to the exact limit. */
    orr_ws_reader_init(&c->rd, ORR_WS_SERVER, c->deflate_bits ? ws_wire_limit(max) : max,
                       w->node->cfg->max_fragments);
    if (c->deflate_bits) orr_ws_reader_allow_compression(&c->rd);
    conn_list_move(w, c, LIST_WS);
    orr_log(ORR_LOG_INFO, conn_ctx(w, c), "<websocket> CONNECTED gear=%s", c->route->gear);
    w->cb_hs = hs;
    run_callback(w, c, &(cb_event){.kind = CB_INIT});
    w->cb_hs = NULL;
}

void ws_run_result(conn_worker *w, orr_conn *c, const orr_registry_result *r) {
    run_callback(w, c, &(cb_event){.kind = CB_RESULT, .result = r});
}

/* After an outage, a newer registration of a name it held won elsewhere. */
void ws_name_conflict(conn_worker *w, orr_conn *c) {
    static const char why[] = "unique name conflict";
    if (c->phase != PHASE_WS || (c->flags & (CF_CLOSE_SENT | CF_TERMINATED))) return;
    orr_log(ORR_LOG_WARN, conn_ctx(w, c),
            "unique name conflict: a newer registration elsewhere won: closing 1008");
    out_cork(w, c);
    conn_send_close(w, c, ORR_WS_CLOSE_POLICY, why, sizeof why - 1, ORR_REASON_STOP);
    out_uncork(w);
}

bool ws_deliver_server_messages(conn_worker *w, orr_conn *c, const orr_payload *const *ms,
                                size_t n) {
    if (c->phase != PHASE_WS || (c->flags & (CF_CLOSE_SENT | CF_TERMINATED))) return false;
    /* What the socket has not taken: past the cap, its client is not
     * reading (the batch below is one event: out_uncork checks it). */
    if (out_over_cap(w, c)) {
        out_slow_consumer(w, c);
        return false;
    }
    uint32_t rx = c->frames_received, tx = c->frames_sent;
    out_cork(w, c);
    for (size_t i = 0; i < n; i++) {
        if (c->phase != PHASE_WS || (c->flags & (CF_CLOSE_SENT | CF_TERMINATED))) break;
        const orr_payload *m = ms[i];
        run_callback(w, c,
                     &(cb_event){.kind = CB_SERVER,
                                 .data = m->bytes + PAYLOAD_HDR_ROOM,
                                 .len = m->len,
                                 .payload = m});
    }
    out_uncork(w);
    conn_count_frames(w, c, rx, tx);
    return true;
}

static void fail(conn_worker *w, orr_conn *c, int err) {
    orr_reason_kind why = err == ORR_WS_EUTF8 || err == ORR_WS_EDEFLATE ? ORR_REASON_BADENCODING
                          : err == ORR_WS_ETOOBIG                       ? ORR_REASON_BADSIZE
                                                                        : ORR_REASON_BADFRAME;
    const char *what = orr_ws_strerror(err);
    orr_log(ORR_LOG_INFO, conn_ctx(w, c), "closing: %s", what ? what : orr_strerror(err));
    conn_in_free(c);
    if (c->flags & CF_CLOSE_SENT) {
        /* Already closing: nothing more to say. */
        c->flags |= CF_CLOSE_AFTER_FLUSH;
        return;
    }
    conn_send_close(w, c, orr_ws_error_close_code(err), "", 0, why);
    c->flags |= CF_CLOSE_AFTER_FLUSH;
}

/* The node is near its memory budget: this message is not collected. The
 * client is told to come back later (1013); what it still sends is read
 * and dropped until its close arrives or the close timeout. */
static void refuse(conn_worker *w, orr_conn *c, size_t need) {
    static const char why[] = "server busy: try again later";
    atomic_fetch_add_explicit(&w->node->budget_refused, 1, memory_order_relaxed);
    orr_log(ORR_LOG_WARN, conn_ctx(w, c),
            "memory budget: %zu of %zu bytes buffered on this node: a message needing %zu more "
            "refused: closing 1013",
            atomic_load_explicit(&w->node->buffered, memory_order_relaxed),
            atomic_load_explicit(&w->node->max_buffered_bytes, memory_order_relaxed), need);
    conn_in_free(c);
    conn_send_close(w, c, ORR_WS_CLOSE_TRY_AGAIN, why, sizeof why - 1, ORR_REASON_OVERLOAD);
}

static void deliver(conn_worker *w, orr_conn *c, int opcode, const uint8_t *data, size_t len) {
    c->frames_received++;
    run_callback(w, c, &(cb_event){.kind = CB_CLIENT, .opcode = opcode, .data = data, .len = len});
}

/* A compressed message, whole: inflated (ws_deflate.c), then delivered. */
static void deliver_z(conn_worker *w, orr_conn *c, int opcode, const uint8_t *z, size_t n) {
    const uint8_t *m;
    size_t len;
    int rc = ws_inflate(w, opcode == ORR_WS_OP_TEXT, z, n, &m, &len);
    if (rc < 0) {
        fail(w, c, rc);
        return;
    }
    deliver(w, c, opcode, m, len);
    ws_inflate_done(w);
}

static int on_data_chunk(conn_worker *w, orr_conn *c, const orr_ws_chunk *ch) {
    bool complete = ch->fin && ch->last;
    if (c->flags & CF_CLOSE_SENT) return 0; /* after our close, data is dropped */
    /* A plain message on a deflate connection, over the exact limit (the
     * reader allowed compression's slack). */
    if (!ch->compressed && c->deflate_bits &&
        (uint64_t)c->in_len + (ch->first ? ch->frame_len : ch->len) >
            w->node->cfg->max_message_bytes) {
        fail(w, c, ORR_WS_ETOOBIG);
        return 0;
    }
    if (complete && ch->first && ch->opcode != ORR_WS_OP_CONT) {
        if (ch->compressed)
            deliver_z(w, c, ch->msg_opcode, ch->data, ch->len);
        else
            deliver(w, c, ch->msg_opcode, ch->data, ch->len);
        return 0;
    }
    /* A message in pieces: collect it. The reader has already checked the
     * frame against max_message_bytes, so this growth is bounded, and the
     * node's budget must have room for it. */
    size_t need = (size_t)c->in_len + (ch->first ? ch->frame_len : ch->len);
    if (need > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 256;
        while (cap < need)
            cap *= 2;
        if (cap > w->node->cfg->max_message_bytes && need <= w->node->cfg->max_message_bytes)
            cap = w->node->cfg->max_message_bytes;
        if (!budget_room(w->node, cap - c->in_cap)) {
            refuse(w, c, cap - c->in_cap);
            return 0;
        }
        conn_in_grow(c, cap);
    }
    if (ch->len) memcpy(c->in + c->in_len, ch->data, ch->len);
    c->in_len += (uint32_t)ch->len;
    if (complete) {
        /* The buffer is handed over for the callback, then freed: an idle
         * connection keeps no buffer. */
        size_t n = c->in_len;
        uint8_t *msg = conn_in_take(c);
        if (ch->compressed)
            deliver_z(w, c, ch->msg_opcode, msg, n);
        else
            deliver(w, c, ch->msg_opcode, msg, n);
        free(msg);
    }
    return 0;
}

static void on_close_frame(conn_worker *w, orr_conn *c, const uint8_t *p, size_t n) {
    uint16_t code = 0;
    int rc = orr_ws_close_payload_check(p, n, &code);
    if (rc < 0) {
        fail(w, c, rc);
        return;
    }
    c->flags |= CF_CLOSE_RECEIVED;
    if (c->flags & CF_CLOSE_SENT) {
        /* The answer to our close: the handshake is complete. */
        c->flags |= CF_CLOSE_AFTER_FLUSH;
        return;
    }
    c->remote_code = code;
    conn_terminate(w, c, ORR_REASON_REMOTE, n >= 2 ? (const char *)p + 2 : NULL,
                   n >= 2 ? n - 2 : 0);
    /* Echo the code and reason (an empty close is echoed empty), then end. */
    conn_send_close(w, c, code, n > 2 ? (const char *)p + 2 : NULL, n > 2 ? n - 2 : 0,
                    ORR_REASON_REMOTE);
    c->flags |= CF_CLOSE_AFTER_FLUSH;
}

static void on_control(conn_worker *w, orr_conn *c, const orr_ws_chunk *ch) {
    const uint8_t *p = ch->data;
    size_t n = ch->len;
    uint8_t copy[125];
    if (!(ch->first && ch->last)) {
        /* A control frame split across reads (at most 125 bytes). */
        if (!c->ctl) c->ctl = orr_xcalloc(1, sizeof *c->ctl);
        conn_ctl *k = c->ctl;
        if (ch->first) k->split_len = 0;
        k->split_open = true;
        memcpy(k->split + k->split_len, ch->data, ch->len);
        k->split_len = (uint8_t)(k->split_len + ch->len);
        if (!ch->last) return;
        n = k->split_len;
        memcpy(copy, k->split, n);
        p = copy;
        k->split_open = false;
        conn_ctl_release(c);
    }
    switch (ch->opcode) {
    case ORR_WS_OP_PING:
        if (c->flags & CF_CLOSE_SENT) break;
        if (c->out_len == c->out_off)
            out_frame(w, ORR_WS_OP_PONG, p, n); /* its client reads: every ping is answered */
        else
            out_pong_later(w, c, p, n); /* backed up: only the newest waits */
        break;
    case ORR_WS_OP_CLOSE:
        if (p != copy) {
            memcpy(copy, p, n);
            p = copy;
        }
        on_close_frame(w, c, p, n);
        break;
    default:
        break; /* unsolicited pongs are fine */
    }
}

void ws_on_data(conn_worker *w, orr_conn *c, uint8_t *p, size_t n) {
    while (n > 0) {
        if (c->phase == PHASE_DEAD || (c->flags & (CF_LINGER | CF_CLOSE_AFTER_FLUSH))) return;
        orr_ws_chunk ch;
        size_t used = 0;
        int rc = orr_ws_read(&c->rd, p, n, &ch, &used);
        p += used;
        n -= used;
        if (rc == 0) return;
        if (rc < 0) {
            fail(w, c, rc);
            return;
        }
        if (ch.opcode & 0x8)
            on_control(w, c, &ch);
        else
            on_data_chunk(w, c, &ch);
    }
}
