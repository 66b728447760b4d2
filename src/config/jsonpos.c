#include "config/jsonpos.h"

#include <orrery/gear.h>
#include <string.h>

/* A read position that knows its line and column. `col` is the column of the
 * byte at `i`, provided that byte starts a character. */
typedef struct cursor {
    const unsigned char *s;
    size_t len;
    size_t i;
    unsigned line;
    unsigned col;
} cursor;

/* The bytes jansson counts as a column: ASCII and the lead bytes of UTF-8
 * sequences (continuation bytes belong to the character before them). */
static int starts_char(unsigned char b) {
    return b < 0x80 || (b >= 0xC2 && b <= 0xF4);
}

static void advance(cursor *c) {
    unsigned char b = c->s[c->i++];
    if (b == '\n') {
        c->line++;
        c->col = 1;
    } else if (starts_char(b)) {
        c->col++;
    }
}

static int peek(const cursor *c) {
    return c->i < c->len ? c->s[c->i] : -1;
}

static orr__jsonpos here(const cursor *c) {
    return (orr__jsonpos){.offset = c->i, .line = c->line, .col = c->col};
}

static void skip_ws(cursor *c) {
    for (int b = peek(c); b == ' ' || b == '\t' || b == '\n' || b == '\r'; b = peek(c))
        advance(c);
}

/* At an opening quote: moves past the closing one and returns the bytes in
 * between, or -1 if the text ends first. */
static int scan_string(cursor *c, orr__jsonpos_str *out) {
    advance(c);
    size_t start = c->i;
    while (c->i < c->len) {
        unsigned char b = c->s[c->i];
        if (b == '"') {
            *out = (orr__jsonpos_str){.p = (const char *)c->s + start, .len = c->i - start};
            advance(c);
            return 0;
        }
        advance(c);
        if (b == '\\') {
            if (c->i >= c->len) return -1;
            advance(c);
        }
    }
    return -1;
}

/* Numbers, true, false, null: jansson checks them; we only step over. */
static int scan_scalar(cursor *c) {
    size_t start = c->i;
    for (int b = peek(c); b >= 0; b = peek(c)) {
        if (!((b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
              b == '+' || b == '-' || b == '.'))
            break;
        advance(c);
    }
    return c->i > start ? 0 : -1;
}

/* The open containers: one bit each, set for an array. */
typedef struct nesting {
    unsigned char is_array[ORR__JSONPOS_MAX_NESTING / 8];
    size_t depth;
    size_t arrays; /* how many of the open containers are arrays */
} nesting;

static int push(nesting *n, int array) {
    if (n->depth == ORR__JSONPOS_MAX_NESTING) return -1;
    unsigned char bit = (unsigned char)(1u << (n->depth % 8));
    if (array) {
        n->is_array[n->depth / 8] |= bit;
        n->arrays++;
    } else {
        n->is_array[n->depth / 8] &= (unsigned char)~bit;
    }
    n->depth++;
    return 0;
}

static int top_is_array(const nesting *n) {
    size_t d = n->depth - 1;
    return (n->is_array[d / 8] >> (d % 8)) & 1;
}

static void pop(nesting *n) {
    if (top_is_array(n)) n->arrays--;
    n->depth--;
}

/* What the walk expects next; WALK_STOP: it ends with walk.rc. */
enum { WANT_VALUE, WANT_MEMBER, AFTER_VALUE, WALK_STOP };

typedef struct walk {
    cursor c;
    nesting n;
    orr__jsonpos_str path[ORR__JSONPOS_MAX_PATH];
    orr__jsonpos_fn fn;
    void *arg;
    int rc;
} walk;

static int stop(walk *wk, int rc) {
    wk->rc = rc;
    return WALK_STOP;
}

/* A value: a container opens (or opens and closes), or a scalar is stepped over. */
static int step_value(walk *wk) {
    cursor *c = &wk->c;
    int b = peek(c);
    orr__jsonpos_str str;
    if (b != '{' && b != '[') {
        if ((b == '"' ? scan_string(c, &str) : scan_scalar(c)) < 0) return stop(wk, ORR_EINVAL);
        return AFTER_VALUE;
    }
    if (push(&wk->n, b == '[') < 0) return stop(wk, ORR_EINVAL);
    advance(c);
    skip_ws(c);
    if (peek(c) == (b == '{' ? '}' : ']')) {
        advance(c);
        pop(&wk->n);
        return AFTER_VALUE;
    }
    return b == '{' ? WANT_MEMBER : WANT_VALUE;
}

/* An object's member: its key, then fn for it (outside any array). */
static int step_member(walk *wk) {
    cursor *c = &wk->c;
    nesting *n = &wk->n;
    orr__jsonpos_str str;
    if (peek(c) != '"') return stop(wk, ORR_EINVAL);
    orr__jsonpos key = here(c);
    if (scan_string(c, &str) < 0) return stop(wk, ORR_EINVAL);
    size_t key_end = c->i;
    skip_ws(c);
    if (peek(c) != ':') return stop(wk, ORR_EINVAL);
    advance(c);
    skip_ws(c);
    if (n->arrays == 0 && n->depth <= ORR__JSONPOS_MAX_PATH) {
        wk->path[n->depth - 1] = str;
        orr__jsonpos_member m = {
            .path = wk->path, .depth = n->depth, .key = key, .key_end = key_end, .value = here(c)};
        int r = wk->fn(&m, wk->arg);
        if (r) return stop(wk, r);
    }
    return WANT_VALUE;
}

/* After a value: a comma, the end of its container, or the end of the text. */
static int step_after(walk *wk) {
    cursor *c = &wk->c;
    skip_ws(c);
    int b = peek(c);
    if (wk->n.depth == 0) return stop(wk, b < 0 ? 0 : ORR_EINVAL);
    int array = top_is_array(&wk->n);
    if (b == ',') {
        advance(c);
        skip_ws(c);
        return array ? WANT_VALUE : WANT_MEMBER;
    }
    if (b != (array ? ']' : '}')) return stop(wk, ORR_EINVAL);
    advance(c);
    pop(&wk->n);
    return AFTER_VALUE;
}

int orr__jsonpos_walk(const char *text, size_t len, orr__jsonpos_fn fn, void *arg) {
    walk wk = {.c = {.s = (const unsigned char *)text, .len = len, .line = 1, .col = 1},
               .fn = fn,
               .arg = arg};
    skip_ws(&wk.c);
    int want = WANT_VALUE;
    while (want != WALK_STOP)
        want = want == WANT_VALUE    ? step_value(&wk)
               : want == WANT_MEMBER ? step_member(&wk)
                                     : step_after(&wk);
    return wk.rc;
}

/* ---- keys: comparing and decoding without a buffer -------------------- */

static int hex4(orr__jsonpos_str raw, size_t i, unsigned *out) {
    if (i + 4 > raw.len) return -1;
    unsigned v = 0;
    for (size_t k = i; k < i + 4; k++) {
        unsigned char h = (unsigned char)raw.p[k];
        unsigned d;
        if (h >= '0' && h <= '9')
            d = h - '0';
        else if (h >= 'a' && h <= 'f')
            d = h - 'a' + 10;
        else if (h >= 'A' && h <= 'F')
            d = h - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static int utf8_encode(unsigned cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The \u escape at raw.p[*i - 2], its four hex digits at *i. */
static int unicode_escape(orr__jsonpos_str raw, size_t *i, char out[4]) {
    unsigned cp, lo;
    if (hex4(raw, *i, &cp) < 0) return -1;
    *i += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return -1;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        /* A high surrogate must be followed by an escaped low one. */
        if (*i + 6 > raw.len || raw.p[*i] != '\\' || raw.p[*i + 1] != 'u' ||
            hex4(raw, *i + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
            return -1;
        *i += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return utf8_encode(cp, out);
}

/* Decodes the character at *i into out: returns its length in bytes, 0 at
 * the end of the key, -1 at a bad escape. */
static int next_char(orr__jsonpos_str raw, size_t *i, char out[4]) {
    if (*i >= raw.len) return 0;
    char b = raw.p[(*i)++];
    if (b != '\\') {
        out[0] = b;
        return 1;
    }
    if (*i >= raw.len) return -1;
    char e = raw.p[(*i)++];
    switch (e) {
    case '"':
    case '\\':
    case '/':
        out[0] = e;
        return 1;
    case 'b':
        out[0] = '\b';
        return 1;
    case 'f':
        out[0] = '\f';
        return 1;
    case 'n':
        out[0] = '\n';
        return 1;
    case 'r':
        out[0] = '\r';
        return 1;
    case 't':
        out[0] = '\t';
        return 1;
    case 'u':
        return unicode_escape(raw, i, out);
    default:
        return -1;
    }
}

int orr__jsonpos_key_eq(orr__jsonpos_str raw, const char *s, size_t n) {
    size_t i = 0, j = 0;
    char ch[4];
    for (;;) {
        int k = next_char(raw, &i, ch);
        if (k <= 0) return k == 0 && j == n;
        if ((size_t)k > n - j || memcmp(s + j, ch, (size_t)k) != 0) return 0;
        j += (size_t)k;
    }
}

size_t orr__jsonpos_key_decode(orr__jsonpos_str raw, char *buf, size_t n) {
    if (n == 0) return 0;
    size_t i = 0, j = 0;
    char ch[4];
    int k;
    while ((k = next_char(raw, &i, ch)) > 0 && (size_t)k < n - j) {
        memcpy(buf + j, ch, (size_t)k);
        j += (size_t)k;
    }
    buf[j] = '\0';
    return j;
}

/* ---- lookups ------------------------------------------------------------ */

typedef struct find_arg {
    const char *const *path;
    size_t depth;
    orr__jsonpos key, value;
} find_arg;

static int match_path(const orr__jsonpos_member *m, void *arg) {
    find_arg *f = arg;
    if (m->depth != f->depth) return 0;
    for (size_t i = 0; i < f->depth; i++)
        if (!orr__jsonpos_key_eq(m->path[i], f->path[i], strlen(f->path[i]))) return 0;
    f->key = m->key;
    f->value = m->value;
    return 1;
}

int orr__jsonpos_find(const char *text, size_t len, const char *const *path, size_t depth,
                      orr__jsonpos *key, orr__jsonpos *value) {
    find_arg f = {.path = path, .depth = depth};
    if (depth == 0 || orr__jsonpos_walk(text, len, match_path, &f) != 1) return ORR_ENOTFOUND;
    if (key) *key = f.key;
    if (value) *value = f.value;
    return 0;
}

orr__jsonpos orr__jsonpos_at(const char *text, size_t len, size_t offset) {
    cursor c = {.s = (const unsigned char *)text, .len = len, .line = 1, .col = 1};
    if (offset > len) offset = len;
    while (c.i < offset)
        advance(&c);
    return here(&c);
}
