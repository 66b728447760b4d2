/*
 * permessage-deflate for orr-loadgen (RFC 7692), as a browser uses it with
 * no context takeover either way (LG_DEFLATE_OFFER): the message every
 * connection sends is compressed once at start (the same bytes every time,
 * RSV1 set), and the server's compressed messages are inflated with one
 * inflater per thread, only when they are checked (--verify in the echo
 * modes; a sample of the members in fanout), so that the generator spends
 * its time on the load rather than on zlib.
 */
#include "loadgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct lg_zthread {
    z_stream s;
    uint8_t *out;
    size_t cap;
};

static const uint8_t trailer[4] = {0x00, 0x00, 0xff, 0xff};

void lg_payload_fill(uint8_t *p, size_t n, int json) {
    if (!json) {
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)('a' + i % 26);
        return;
    }
    /* Records like a chat or a feed sends: repeated keys, varying values. */
    static const char *const names[] = {"alice", "bob", "carol", "dave", "erin", "frank"};
    static const char *const words[] = {"moon", "orbit", "gear", "phase", "tide", "eclipse"};
    char rec[160];
    size_t at = 0;
    uint64_t r = 0x9e3779b97f4a7c15u;
    for (unsigned i = 0; at < n; i++) {
        r = r * 6364136223846793005u + 1442695040888963407u;
        int k =
            snprintf(rec, sizeof rec,
                     "%s{\"id\":%u,\"user\":\"%s\",\"text\":\"%s %s %u\",\"score\":%u.%02u,"
                     "\"seen\":%s}",
                     i ? "," : "[", 1000 + i, names[r % 6], words[(r >> 8) % 6],
                     words[(r >> 16) % 6], (unsigned)(r >> 40) % 10000, (unsigned)(r >> 24) % 100,
                     (unsigned)(r >> 32) % 100, (r >> 60) & 1 ? "true" : "false");
        size_t take = (size_t)k < n - at ? (size_t)k : n - at;
        memcpy(p + at, rec, take);
        at += take;
    }
    if (n) p[n - 1] = ']';
}

int lg_wire_init(struct lg_shared *sh) {
    const struct lg_opts *o = sh->o;
    if (!o->deflate) {
        sh->wire = sh->payload;
        sh->wire_len = o->size;
        return 0;
    }
    z_stream s = {0};
    if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&s, (uLong)o->size) + 16;
    sh->wire = malloc(cap);
    if (!sh->wire) return -1;
    s.next_in = sh->payload;
    s.avail_in = (uInt)o->size;
    s.next_out = sh->wire;
    s.avail_out = (uInt)cap;
    int rc = deflate(&s, Z_SYNC_FLUSH);
    sh->wire_len = cap - s.avail_out;
    deflateEnd(&s);
    if (rc != Z_OK || sh->wire_len < 4 || memcmp(sh->wire + sh->wire_len - 4, trailer, 4))
        return -1;
    sh->wire_len -= 4;
    return 0;
}

static struct lg_zthread *zthread(struct lg_thread *t) {
    if (t->z) return t->z;
    struct lg_zthread *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    if (inflateInit2(&z->s, -15) != Z_OK) {
        free(z);
        return NULL;
    }
    return t->z = z;
}

int lg_inflate(struct lg_thread *t, const uint8_t *p, size_t n, size_t max, const uint8_t **out,
               size_t *len) {
    struct lg_zthread *z = zthread(t);
    if (!z) return -1;
    if (z->cap < max + 1) {
        uint8_t *b = realloc(z->out, max + 1);
        if (!b) return -1;
        z->out = b;
        z->cap = max + 1;
    }
    inflateReset(&z->s);
    z->s.next_out = z->out;
    z->s.avail_out = (uInt)z->cap;
    for (int part = 0; part < 2; part++) {
        z->s.next_in = (Bytef *)(part ? trailer : p);
        z->s.avail_in = (uInt)(part ? sizeof trailer : n);
        int rc = inflate(&z->s, Z_SYNC_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) return -1;
        if (z->s.avail_in) return -1; /* more than max bytes */
    }
    *out = z->out;
    *len = z->cap - z->s.avail_out;
    return *len <= max ? 0 : -1;
}

size_t lg_echo_max(const struct lg_opts *o) {
    /* A server may send the echo stored (not compressed): a few bytes more. */
    return o->size + o->size / 1024 + 64;
}

int lg_echo_msg(void *ctx, int opcode, const uint8_t *p, size_t n) {
    struct lg_thread *t = ctx;
    const struct lg_opts *o = t->sh->o;
    if (opcode & 0x40) {
        if (!o->verify) return 0;
        if (lg_inflate(t, p, n, o->size, &p, &n) < 0) {
            snprintf(t->err, sizeof t->err, "a compressed echo does not inflate");
            return LG_RX_EMSG;
        }
    }
    if (n != o->size || (o->verify && memcmp(p, t->sh->payload, n))) {
        snprintf(t->err, sizeof t->err, "an echo of %zu bytes is not what was sent", n);
        return LG_RX_EMSG;
    }
    return 0;
}

void lg_z_free(struct lg_thread *t) {
    if (!t->z) return;
    inflateEnd(&t->z->s);
    free(t->z->out);
    free(t->z);
    t->z = NULL;
}
