/*
 * The upgrade checks of RFC 6455 4.2.1, one failing condition per case with
 * the status it must produce, and the accept value.
 */
#include "http/websocket.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

typedef struct upgrade_case {
    const char *what;
    const char *request_line; /* without CRLF */
    const char *headers;      /* header lines, each ending in CRLF */
    int want;
} upgrade_case;

#define H_HOST "Host: example.org\r\n"
#define H_UPG "Upgrade: websocket\r\n"
#define H_CONN "Connection: Upgrade\r\n"
#define H_VER "Sec-WebSocket-Version: 13\r\n"
#define H_KEY "Sec-WebSocket-Key: " KEY "\r\n"
#define GET11 "GET /echo/ws HTTP/1.1"

static const upgrade_case cases[] = {
    {"valid", GET11, H_HOST H_UPG H_CONN H_VER H_KEY, 0},
    {"valid, other case and lists", GET11,
     "host: x\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
     "sec-websocket-version: 13\r\nsec-websocket-key: " KEY "\r\n",
     0},
    {"valid, Connection twice", GET11,
     H_HOST H_UPG "Connection: keep-alive\r\nConnection: upgrade\r\n" H_VER H_KEY, 0},
    {"valid, key with all alphabet kinds", GET11,
     H_HOST H_UPG H_CONN H_VER "Sec-WebSocket-Key: AZaz09+/AAAAAAAAAAAAAA==\r\n", 0},

    {"POST", "POST /echo/ws HTTP/1.1", H_HOST H_UPG H_CONN H_VER H_KEY, 400},
    {"HEAD", "HEAD /echo/ws HTTP/1.1", H_HOST H_UPG H_CONN H_VER H_KEY, 400},
    {"HTTP/1.0", "GET /echo/ws HTTP/1.0", H_HOST H_UPG H_CONN H_VER H_KEY, 400},
    {"no Host", GET11, H_UPG H_CONN H_VER H_KEY, 400},
    {"empty Host", GET11, "Host:\r\n" H_UPG H_CONN H_VER H_KEY, 400},
    {"two Hosts", GET11, H_HOST H_HOST H_UPG H_CONN H_VER H_KEY, 400},
    {"two Upgrades", GET11, H_HOST H_UPG H_UPG H_CONN H_VER H_KEY, 400},
    {"two Upgrades, apart and in other cases", GET11,
     H_HOST H_UPG H_CONN H_VER "upgrade: WebSocket\r\n" H_KEY, 400},
    {"Upgrade: websocket and Upgrade: h2c", GET11,
     H_HOST "Upgrade: h2c\r\n" H_CONN H_UPG H_VER H_KEY, 400},
    /* Two Upgrades are 400 before the 426 for a missing websocket. */
    {"two Upgrades, neither websocket", GET11,
     H_HOST "Upgrade: h2c\r\nUpgrade: h2c\r\n" H_CONN H_VER H_KEY, 400},
    {"an empty second Upgrade", GET11, H_HOST H_UPG "Upgrade:\r\n" H_CONN H_VER H_KEY, 400},
    {"one Upgrade with a list", GET11, H_HOST "Upgrade: websocket, h2c\r\n" H_CONN H_VER H_KEY, 0},

    {"no Upgrade", GET11, H_HOST H_CONN H_VER H_KEY, 426},
    {"Upgrade: h2c", GET11, H_HOST "Upgrade: h2c\r\n" H_CONN H_VER H_KEY, 426},
    {"Upgrade: websockets", GET11, H_HOST "Upgrade: websockets\r\n" H_CONN H_VER H_KEY, 426},
    {"no Connection", GET11, H_HOST H_UPG H_VER H_KEY, 426},
    {"Connection: keep-alive", GET11, H_HOST H_UPG "Connection: keep-alive\r\n" H_VER H_KEY, 426},
    {"neither (a plain GET)", GET11, H_HOST, 426},
    /* 426 comes before the version and key checks. */
    {"no Upgrade and no key", GET11, H_HOST H_CONN H_VER, 426},

    {"no version", GET11, H_HOST H_UPG H_CONN H_KEY, 400},
    {"version 8", GET11, H_HOST H_UPG H_CONN "Sec-WebSocket-Version: 8\r\n" H_KEY, 400},
    {"version 7", GET11, H_HOST H_UPG H_CONN "Sec-WebSocket-Version: 7\r\n" H_KEY, 400},
    {"version 013", GET11, H_HOST H_UPG H_CONN "Sec-WebSocket-Version: 013\r\n" H_KEY, 400},
    {"version list", GET11, H_HOST H_UPG H_CONN "Sec-WebSocket-Version: 13, 8\r\n" H_KEY, 400},
    {"version twice", GET11, H_HOST H_UPG H_CONN H_VER H_VER H_KEY, 400},
    {"version twice, other case", GET11,
     H_HOST H_UPG H_CONN H_VER H_KEY "sec-websocket-version: 13\r\n", 400},
    {"empty version", GET11, H_HOST H_UPG H_CONN "Sec-WebSocket-Version:\r\n" H_KEY, 400},

    {"no key", GET11, H_HOST H_UPG H_CONN H_VER, 400},
    {"empty key", GET11, H_HOST H_UPG H_CONN H_VER "Sec-WebSocket-Key:\r\n", 400},
    {"key twice", GET11, H_HOST H_UPG H_CONN H_VER H_KEY H_KEY, 400},
    {"two different keys", GET11,
     H_HOST H_UPG H_CONN H_VER H_KEY "Sec-WebSocket-Key: AZaz09+/AAAAAAAAAAAAAA==\r\n", 400},
    {"key of 15 bytes", GET11,
     H_HOST H_UPG H_CONN H_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j\r\n", 400},
    {"key of 17 bytes", GET11,
     H_HOST H_UPG H_CONN H_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZWU=\r\n", 400},
    {"key without padding", GET11,
     H_HOST H_UPG H_CONN H_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n", 400},
    {"key with a bad character", GET11,
     H_HOST H_UPG H_CONN H_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j-Q==\r\n", 400},
    {"key, url-safe alphabet", GET11,
     H_HOST H_UPG H_CONN H_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j_Q==\r\n", 400},
    {"key, non-canonical last char", GET11,
     H_HOST H_UPG H_CONN H_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n", 400},
    {"key, padding inside", GET11,
     H_HOST H_UPG H_CONN H_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub2=jZQ==\r\n", 400},
    {"key with a space inside", GET11,
     H_HOST H_UPG H_CONN H_VER "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ==\r\n", 400},
};

Test(websocket_upgrade, checks_and_statuses) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char s[1024];
        int n = snprintf(s, sizeof s, "%s\r\n%s\r\n", cases[i].request_line, cases[i].headers);
        orr_http_request req;
        cr_assert_eq(orr_http_parse_head(s, (size_t)n, &req), 0, "%s: parse", cases[i].what);
        orr_span key = {0};
        int rc = orr_ws_upgrade_check(&req, &key);
        /* An error code, never a status: the status is what it maps to. */
        cr_expect_leq(rc, 0, "%s: got %d", cases[i].what, rc);
        int status = rc == 0 ? 0 : orr_http_status_of(rc);
        cr_expect_eq(status, cases[i].want, "%s: got %d", cases[i].what, status);
        if (rc == 0) {
            cr_expect_eq(key.n, 24, "%s", cases[i].what);
            cr_expect(key.p >= s && key.p + key.n <= s + n, "%s: key not in buffer", cases[i].what);
        }
    }
}

typedef struct accept_case {
    const char *key, *accept;
} accept_case;

/* The first is RFC 6455's own (section 1.3); the others were computed with
 * `printf '%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11' KEY | openssl sha1 -binary
 * | base64`. The long key takes the streaming path. */
static const accept_case accepts[] = {
    {KEY, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
    {"AZaz09+/AAAAAAAAAAAAAA==", "r6zpRM3AdJH5nVsNgFGSfkyOZ14="},
    {"", "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w="},
    {"a-key-that-is-longer-than-any-valid-key-and-longer-than-the-stack-buffer-of-"
     "the-accept-function-so-that-it-streams",
     "E/wFui5OyaxjVxP+NIjU7MP1Lv4="},
};

Test(websocket_upgrade, accept_values) {
    for (size_t i = 0; i < sizeof accepts / sizeof *accepts; i++) {
        char out[29];
        memset(out, 'x', sizeof out);
        orr_ws_accept_value(accepts[i].key, strlen(accepts[i].key), out);
        cr_expect_str_eq(out, accepts[i].accept, "case %zu", i);
    }
}

typedef struct protocol_case {
    const char *headers; /* header lines, each ending in CRLF */
    const char *want;    /* the tokens joined with '|', or NULL: refused (400) */
} protocol_case;

static const protocol_case protocols[] = {
    {"", ""},
    {"Sec-WebSocket-Protocol: chat\r\n", "chat"},
    {"Sec-WebSocket-Protocol: a, b,c\r\n", "a|b|c"},
    {"Sec-WebSocket-Protocol: a\r\nX-Other: 1\r\nsec-websocket-protocol: b, c\r\n", "a|b|c"},
    {"Sec-WebSocket-Protocol: , a,, \t b ,\r\n", "a|b"},
    {"Sec-WebSocket-Protocol:\r\n", ""},
    {"Sec-WebSocket-Protocol: ,,,\r\n", ""},
    {"Sec-WebSocket-Protocol: x!#$%&'*+-.^_`|~9\r\n", "x!#$%&'*+-.^_`|~9"},
    {"Sec-WebSocket-Protocol: a b\r\n", NULL},
    {"Sec-WebSocket-Protocol: a;b\r\n", NULL},
    {"Sec-WebSocket-Protocol: \"a\"\r\n", NULL},
    {"Sec-WebSocket-Protocol: a/b\r\n", NULL},
    {"Sec-WebSocket-Protocol: ok\r\nSec-WebSocket-Protocol: (x)\r\n", NULL},
    {"Sec-WebSocket-Protocol: a\x80\r\n", NULL},
    {"Sec-WebSocket-Protocolx: a b\r\n", ""}, /* another header */
};

Test(websocket_upgrade, subprotocol_lists) {
    for (size_t i = 0; i < sizeof protocols / sizeof *protocols; i++) {
        char s[1024];
        int n = snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: x\r\n%s\r\n", protocols[i].headers);
        orr_http_request req;
        cr_assert_eq(orr_http_parse_head(s, (size_t)n, &req), 0, "case %zu: parse", i);
        orr_ws_protocol_iter it = {.req = &req};
        orr_span tok;
        char got[256] = "";
        int rc;
        /* Fed in the order the headers came, each token within the buffer. */
        while ((rc = orr_ws_protocol_next(&it, &tok)) == 1) {
            cr_expect(tok.n > 0 && tok.p >= s && tok.p + tok.n <= s + n, "case %zu", i);
            size_t at = strlen(got);
            snprintf(got + at, sizeof got - at, "%s%.*s", at ? "|" : "", (int)tok.n, tok.p);
        }
        if (!protocols[i].want) {
            cr_expect_eq(rc, ORR_HTTP_EBAD, "case %zu: %s", i, protocols[i].headers);
            cr_expect_eq(orr_http_status_of(rc), 400);
        } else {
            cr_expect_eq(rc, 0, "case %zu: %s", i, protocols[i].headers);
            cr_expect_str_eq(got, protocols[i].want, "case %zu", i);
        }
    }
}
