/*
 * RFC 6455 framing: a reader that turns bytes into events and a writer that
 * builds frame headers. Neither touches a socket nor allocates.
 *
 * The reader checks everything RFC 6455 asks of a frame stream: masking by
 * role, reserved bits (RSV1 only where permessage-deflate allows it, when
 * the caller says it was negotiated), opcodes, control frames
 * (<= 125 bytes, never fragmented, allowed between fragments), the
 * continuation sequence, the 64-bit length's top bit, the message size limit
 * (at the frame header and across fragments, before any payload is
 * buffered), the number of frames a data message may have, and UTF-8 in
 * text messages as payload arrives (failing at the first bad byte, even in
 * the middle of a fragment). Close payloads are checked by
 * orr_ws_close_payload_check once the caller has the whole frame.
 */
#ifndef ORR_WS_FRAME_H
#define ORR_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    ORR_WS_OP_CONT = 0x0,
    ORR_WS_OP_TEXT = 0x1,
    ORR_WS_OP_BINARY = 0x2,
    ORR_WS_OP_CLOSE = 0x8,
    ORR_WS_OP_PING = 0x9,
    ORR_WS_OP_PONG = 0xA,
};

/* Close codes the reader's errors map to. */
enum {
    ORR_WS_CLOSE_NORMAL = 1000,
    ORR_WS_CLOSE_GOING_AWAY = 1001,
    ORR_WS_CLOSE_PROTOCOL = 1002,
    ORR_WS_CLOSE_NO_STATUS = 1005,
    ORR_WS_CLOSE_BAD_DATA = 1007,
    ORR_WS_CLOSE_POLICY = 1008,
    ORR_WS_CLOSE_TOO_BIG = 1009,
    ORR_WS_CLOSE_INTERNAL = 1011,
    ORR_WS_CLOSE_TRY_AGAIN = 1013,
};

/* Reader errors (negative, like every error in Orrery). */
enum {
    ORR_WS_EPROTO = -100, /* -> close 1002 */
    ORR_WS_EUTF8 = -101,  /* -> close 1007 */
    ORR_WS_ETOOBIG = -102 /* -> close 1009 */
};

/* What a reader error means, for logs; NULL for a code that is not one. */
const char *orr_ws_strerror(int err);

typedef enum { ORR_WS_SERVER, ORR_WS_CLIENT } orr_ws_role;

/* Reader state. Embedded by value in a connection; fields are private.
 * 64 bytes: one cache line. */
typedef struct orr_ws_reader {
    uint64_t remaining_;  /* payload bytes left in the current frame (0: between frames) */
    uint64_t frame_len_;  /* payload length of the current frame */
    uint64_t msg_bytes_;  /* payload bytes of the current data message so far, counted
                             whole frames at a time as each header is accepted */
    uint64_t max_msg_;    /* limit for one data message (0: none) */
    uint32_t utf8_;       /* validator state of the current text message */
    uint32_t frames_;     /* data frames of the current data message so far */
    uint32_t max_frames_; /* limit for frames_ (UINT32_MAX: none) */
    union {
        uint8_t hdr_[14]; /* header bytes received so far, while hdr_len_ counts them */
        uint8_t mask_[4]; /* masking key of the frame whose header is committed: the
                             header bytes are not needed again until the next frame */
    };
    uint8_t hdr_len_;
    uint8_t mask_off_;   /* next mask byte index (0..3) */
    uint8_t opcode_;     /* opcode of the current frame (as sent) */
    uint8_t msg_opcode_; /* TEXT/BINARY while a data message is open, else 0 */
    uint8_t flags_;      /* private bit set: fin, text frame, role */
    int8_t err_;         /* 0, or the ORR_WS_E* code every later call returns */
} orr_ws_reader;

_Static_assert(sizeof(orr_ws_reader) == 64, "orr_ws_reader is one cache line");

/*
 * Start a reader. max_message_bytes bounds the payload of one data message
 * (0: no limit); max_frames bounds the frames one data message may have,
 * continuations included, control frames between them not (0: the most a
 * uint32_t counts, 2^32 - 1). Past either the stream fails with
 * ORR_WS_ETOOBIG at the header byte that shows it: the length byte for size,
 * the first byte of the frame one too many.
 */
void orr_ws_reader_init(orr_ws_reader *r, orr_ws_role role, uint64_t max_message_bytes,
                        uint32_t max_frames);

/* permessage-deflate was negotiated (RFC 7692): a data message may start
 * with RSV1 set, its chunks then say compressed. */
void orr_ws_reader_allow_compression(orr_ws_reader *r);

/* One step of the reader: a piece of payload of one frame. */
typedef struct orr_ws_chunk {
    uint8_t opcode;     /* the frame's own opcode (CONT for continuations) */
    uint8_t msg_opcode; /* TEXT or BINARY for data frames (resolved for CONT), else = opcode */
    bool fin;           /* the frame's FIN bit */
    bool first;         /* first chunk of this frame */
    bool last;          /* last chunk of this frame: the frame is complete */
    uint64_t frame_len; /* the frame's payload length from its header */
    uint8_t *data;      /* unmasked in place, inside the caller's buffer */
    size_t len;
    bool compressed; /* a data frame of a message whose first frame had RSV1: its bytes
                        are deflated, and its text is not UTF-8 checked here */
} orr_ws_chunk;

/*
 * Feed bytes. Consumes from `buf` and returns:
 *   1  a chunk was produced in *out (a frame of length 0 yields one chunk with
 *      len 0, first and last set); *consumed says how many bytes were used;
 *   0  all `len` bytes were consumed (header bytes are kept in the reader)
 *      and there is nothing to report yet; *consumed == len;
 *  <0  ORR_WS_EPROTO / ORR_WS_EUTF8 / ORR_WS_ETOOBIG: the stream is invalid;
 *      the reader stays in error and must not be fed again (if it is, it
 *      returns the same error with *consumed == 0). *consumed counts the
 *      bytes accepted before the error, so the byte to blame is
 *      buf[*consumed]: a bad header byte, the last length byte of a frame
 *      over the size limit (no payload is consumed), the first byte of a
 *      frame over the frame limit, or the first invalid
 *      UTF-8 byte (the chunk holding it is not emitted). A text message that
 *      ends inside a code point fails at the end of its final frame.
 * Payload bytes are unmasked in place. A complete frame that is wholly in
 * `buf` comes out as a single chunk (first && last).
 * A data message is complete when a chunk has fin && last.
 */
int orr_ws_read(orr_ws_reader *r, uint8_t *buf, size_t len, orr_ws_chunk *out, size_t *consumed);

/* Close code of a reader error. */
uint16_t orr_ws_error_close_code(int err);

/*
 * Check a complete close payload received from a peer: empty, or a 2-byte
 * code that may be sent on the wire (1000-1003, 1007-1014, 3000-4999) then a
 * valid UTF-8 reason. Returns 0 or ORR_WS_EPROTO / ORR_WS_EUTF8. On success
 * *code is the code (0 when the payload is empty).
 */
int orr_ws_close_payload_check(const uint8_t *p, size_t len, uint16_t *code);

/* 1 if a server or gear may send this code (1000-1003, 1007-1014, 3000-4999). */
int orr_ws_close_code_sendable(uint16_t code);

/*
 * Write a frame header into out (at most 14 bytes); returns its length.
 * `mask` NULL for server frames; a client passes 4 bytes and must mask the
 * payload itself (orr_ws_mask).
 */
size_t orr_ws_header(uint8_t out[14], uint8_t opcode, bool fin, uint64_t len, const uint8_t *mask);

/*
 * The whole size (header, mask key and payload) of the frame that starts at
 * p, from its header; 0 if the n bytes at p do not hold the whole header.
 * For walking frames this process wrote itself: nothing is checked.
 */
size_t orr_ws_frame_size(const uint8_t *p, size_t n);

/* XOR `len` bytes with the 4-byte mask, starting at mask index `off`; returns
 * the next index. Word-at-a-time. */
unsigned orr_ws_mask(uint8_t *p, size_t len, const uint8_t mask[4], unsigned off);

#endif
