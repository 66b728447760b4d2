/*
 * src/http/origin.c: origins normalised as browsers serialise them, and
 * the allowlist's exact entries and *.example.com patterns.
 */
#include "http/origin.h"

#include <criterion/criterion.h>
#include <string.h>

static const char *norm(const char *in, char *out) {
    long n = orr_origin_normalize(in, strlen(in), out, ORR_ORIGIN_MAX);
    return n < 0 ? NULL : out;
}

Test(origin, normalised_as_browsers_write_them) {
    static const char *const cases[][2] = {
        {"https://example.com", "https://example.com"},
        {"HTTPS://Example.COM", "https://example.com"},
        {"https://example.com:443", "https://example.com"},
        {"http://example.com:80", "http://example.com"},
        {"http://example.com:443", "http://example.com:443"},
        {"https://example.com:8443", "https://example.com:8443"},
        {"ws://x:80", "ws://x"},
        {"wss://x:443", "wss://x"},
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
        {"http://[::1]:8080", "http://[::1]:8080"},
        {"http://[::1]", "http://[::1]"},
        {"chrome-extension://abcdef", "chrome-extension://abcdef"},
        {"null", "null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[ORR_ORIGIN_MAX];
        const char *got = norm(cases[i][0], out);
        cr_expect(got && strcmp(got, cases[i][1]) == 0, "%s: got %s", cases[i][0],
                  got ? got : "(refused)");
    }
}

Test(origin, what_is_not_an_origin) {
    static const char *const bad[] = {
        "",
        "example.com",
        "https://",
        "https://example.com/",
        "https://example.com/path",
        "https://user@example.com",
        "https://example.com?x",
        "https://example.com:",
        "https://example.com:0",
        "https://example.com:65536",
        "https://example.com:123456",
        "https://exa mple.com",
        "https://example..com",
        "https://.example.com",
        "https://[::1",
        "https://[::1]x",
        "https://[zz::1]",
        "1http://x",
        "Null",
        "https://example.com\x01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[ORR_ORIGIN_MAX];
        cr_expect_null(norm(bad[i], out), "%s accepted", bad[i]);
    }
    char small[8];
    cr_expect_lt(orr_origin_normalize("https://example.com", 19, small, sizeof small), 0,
                 "does not fit");
}

Test(origin, exact_entries_and_patterns) {
    const char *list = "https://app.example.com\n*.trusted.org\nnull";
    static const struct {
        const char *origin;
        bool want;
    } cases[] = {
        {"https://app.example.com", true},
        {"http://app.example.com", false},
        {"https://app.example.com:8443", false},
        {"https://example.com", false},
        {"https://a.trusted.org", true},
        {"http://a.b.trusted.org:9000", true},
        {"wss://x.trusted.org", true},
        {"https://trusted.org", false},
        {"https://eviltrusted.org", false},
        {"https://trusted.org.evil.com", false},
        {"null", true},
        {"http://[::1]", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(orr_origin_allowed(list, cases[i].origin, strlen(cases[i].origin)),
                     cases[i].want, "%s", cases[i].origin);
    cr_expect(!orr_origin_allowed("", "https://x", 9), "an empty list allows nothing");
    cr_expect(!orr_origin_allowed("*.trusted.org", "null", 4));
    cr_expect(orr_origin_pattern_valid("*.example.com", 13));
    cr_expect(!orr_origin_pattern_valid("*example.com", 12));
    cr_expect(!orr_origin_pattern_valid("*.", 2));
    cr_expect(!orr_origin_pattern_valid("*.*.example.com", 15));
    cr_expect(!orr_origin_pattern_valid("https://*.example.com", 21));
}
