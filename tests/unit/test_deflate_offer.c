/*
 * src/http/deflate_offer.c: the server's answer to permessage-deflate
 * offers (RFC 7692 section 7.1): the first acceptable offer wins, anything
 * it cannot accept is declined (never a 400), and the answer always asks
 * for no context takeover on both sides.
 */
#include "http/deflate_offer.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define BOTH "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

typedef struct offer_case {
    const char *headers; /* header lines, each ending in CRLF */
    const char *want;    /* the response, or NULL: declined */
    int server_bits, client_bits;
} offer_case;

#define X "Sec-WebSocket-Extensions: "

static const offer_case cases[] = {
    {"", NULL, 0, 0},
    {X "permessage-deflate\r\n", BOTH, 15, 15},
    /* What browsers, npm ws and Python websockets send. */
    {X "permessage-deflate; client_max_window_bits\r\n", BOTH, 15, 15},
    {X "permessage-deflate; client_max_window_bits=12\r\n", BOTH, 15, 12},
    {X "permessage-deflate; server_max_window_bits=10\r\n", BOTH "; server_max_window_bits=10", 10,
     15},
    {X "permessage-deflate; server_max_window_bits=\"12\"\r\n", BOTH "; server_max_window_bits=12",
     12, 15},
    {X "permessage-deflate;server_no_context_takeover;client_no_context_takeover\r\n", BOTH, 15,
     15},
    {X "PerMessage-Deflate ;  Client_Max_Window_Bits = 9 \r\n", BOTH, 15, 9},
    /* Other extensions are skipped; the next offer is taken. */
    {X "x-webkit-deflate-frame, permessage-deflate\r\n", BOTH, 15, 15},
    {X "permessage-deflate; server_max_window_bits=8, permessage-deflate\r\n", BOTH, 15, 15},
    {X "permessage-deflate; unknown\r\n" X "permessage-deflate; server_max_window_bits=9\r\n",
     BOTH "; server_max_window_bits=9", 9, 15},
    {X "foo; a=\"x,y\"; b, permessage-deflate\r\n", BOTH, 15, 15},
    /* Declined: unknown, repeated, valued or unvalued the wrong way, out of range. */
    {X "permessage-deflate; foo\r\n", NULL, 0, 0},
    {X "permessage-deflate; server_no_context_takeover; server_no_context_takeover\r\n", NULL, 0,
     0},
    {X "permessage-deflate; client_max_window_bits; client_max_window_bits=10\r\n", NULL, 0, 0},
    {X "permessage-deflate; server_no_context_takeover=1\r\n", NULL, 0, 0},
    {X "permessage-deflate; server_max_window_bits\r\n", NULL, 0, 0},
    {X "permessage-deflate; server_max_window_bits=8\r\n", NULL, 0, 0},
    {X "permessage-deflate; server_max_window_bits=16\r\n", NULL, 0, 0},
    {X "permessage-deflate; server_max_window_bits=010\r\n", NULL, 0, 0},
    {X "permessage-deflate; client_max_window_bits=7\r\n", NULL, 0, 0},
    {X "permessage-deflate; client_max_window_bits=\"\"\r\n", NULL, 0, 0},
    {X "permessage-deflate; client_max_window_bits=\"1 0\"\r\n", NULL, 0, 0},
    /* Not well formed. */
    {X "permessage-deflate;;\r\n", NULL, 0, 0},
    {X "permessage-deflate x\r\n", NULL, 0, 0},
    {X "; permessage-deflate\r\n", NULL, 0, 0},
    {X "permessage-deflate; a=\"x, permessage-deflate\r\n", NULL, 0, 0},
    {X ",,, \r\n", NULL, 0, 0},
    {X "permessage-deflate; a=\"x\\\"\", permessage-deflate\r\n", BOTH, 15, 15},
};

Test(deflate_offer, the_first_acceptable_offer_wins_and_the_rest_is_declined) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char s[1024], resp[ORR_WS_DEFLATE_RESPONSE_MAX];
        int n = snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: x\r\n%s\r\n", cases[i].headers);
        orr_http_request req;
        cr_assert_eq(orr_http_parse_head(s, (size_t)n, &req), 0, "case %zu: parse", i);
        orr_ws_deflate_params p = {0};
        int rc = orr_ws_deflate_negotiate(&req, &p, resp);
        if (!cases[i].want) {
            cr_expect_eq(rc, 0, "case %zu (%s): accepted as %s", i, cases[i].headers, resp);
            continue;
        }
        cr_expect_eq(rc, 1, "case %zu (%s): declined", i, cases[i].headers);
        if (rc != 1) continue;
        cr_expect_str_eq(resp, cases[i].want, "case %zu", i);
        cr_expect_eq(p.server_max_window_bits, cases[i].server_bits, "case %zu", i);
        cr_expect_eq(p.client_max_window_bits, cases[i].client_bits, "case %zu", i);
    }
}
