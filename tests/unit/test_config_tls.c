/*
 * The config loader's "tls": both paths stored with the positions of their
 * values (for what only OpenSSL can tell, at start-up), both required and
 * readable, every bad value at its dotted path, a "tls" replacing the
 * caller's whole and a failed load keeping it, --help under the key.
 */
#include "config/config.h"
#include "config_files.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Two readable files standing for a certificate and a key (the config only
 * checks that they can be read). */
static char cert[64], key[64];

static void make_files(void) {
    write_tmp("certificate", cert);
    write_tmp("key", key);
}

static void remove_files(void) {
    unlink(cert);
    unlink(key);
}

TestSuite(config_tls, .init = make_files, .fini = remove_files);

Test(config_tls, paths_and_their_positions) {
    char text[512], path[64], err[512], want[128];
    snprintf(text, sizeof text,
             "{\n  \"tls\": {\n    \"cert\": \"%s\",\n    \"key\": \"%s\"\n  }\n}\n", cert, key);
    orr_config c;
    orr_config_defaults(&c);
    cr_expect_not(c.tls.enabled);
    cr_assert_eq(load_text(text, &c, path, err, sizeof err), 0, "%s", err);
    cr_expect(c.tls.enabled);
    cr_expect_str_eq(c.tls.cert, cert);
    cr_expect_str_eq(c.tls.key, key);
    snprintf(want, sizeof want, "%s:3:13", path);
    cr_expect_str_eq(c.tls.cert_at, want);
    snprintf(want, sizeof want, "%s:4:12", path);
    cr_expect_str_eq(c.tls.key_at, want);
}

/* Absent: the caller's kept; present: replaces it whole. */
Test(config_tls, absent_kept_present_replaces) {
    char text[512], path[64], err[512];
    orr_config c;
    orr_config_defaults(&c);
    snprintf(text, sizeof text, "{\"tls\": {\"cert\": \"%s\", \"key\": \"%s\"}}", cert, key);
    cr_assert_eq(load_text(text, &c, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(load_text("{\"workers\": 1}", &c, path, err, sizeof err), 0, "%s", err);
    cr_expect(c.tls.enabled);
    cr_expect_str_eq(c.tls.cert, cert);
    snprintf(text, sizeof text, "{\"tls\": {\"key\": \"%s\", \"cert\": \"%s\"}}", cert, key);
    cr_assert_eq(load_text(text, &c, path, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(c.tls.cert, key);
    cr_expect_str_eq(c.tls.key, cert);
}

Test(config_tls, bad_values_named_at_their_place) {
    char text[512], path[64], err[512];
    orr_config c, before;
    orr_config_defaults(&c);
    snprintf(text, sizeof text, "{\"tls\": {\"cert\": \"%s\", \"key\": \"%s\"}}", cert, key);
    cr_assert_eq(load_text(text, &c, path, err, sizeof err), 0, "%s", err);
    before = c;
    struct {
        const char *value; /* the tls object as written; %s: a readable file */
        int col;
        const char *key, *why;
    } cases[] = {
        {"[]", 9, "tls", "expected an object {\"cert\": PATH, \"key\": PATH}, got []"},
        {"\"on\"", 9, "tls", "expected an object"},
        {"{\"cert\": \"%s\"}", 9, "tls", "\"key\" is required"},
        {"{\"key\": \"%s\"}", 9, "tls", "\"cert\" is required"},
        {"{}", 9, "tls", "\"cert\" is required"},
        {"{\"cert\": \"\", \"key\": \"%s\"}", 18, "tls.cert", "expected a non-empty path string"},
        {"{\"cert\": 7, \"key\": \"%s\"}", 18, "tls.cert",
         "expected a non-empty path string, got 7"},
        {"{\"cert\": \"/nonexistent/c.pem\", \"key\": \"%s\"}", 18, "tls.cert",
         "cannot read /nonexistent/c.pem: No such file or directory"},
        {"{\"key\": \"/tmp\", \"cert\": \"%s\"}", 17, "tls.key", "/tmp is a directory"},
        {"{\"key\": \"%s\", \"certificate\": \"x\"}", 0, "tls.certificate",
         "unknown key (known: cert, key)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char obj[256];
        snprintf(obj, sizeof obj, cases[i].value, cert);
        snprintf(text, sizeof text, "{\"tls\": %s}", obj);
        cr_expect_eq(load_text(text, &c, path, err, sizeof err), -1, "%s loaded", text);
        if (cases[i].col) expect_prefix(err, path, 1, cases[i].col, cases[i].key);
        cr_expect(strstr(err, cases[i].key) && strstr(err, cases[i].why), "%s: got %s", text, err);
        /* A failed load changes nothing. */
        cr_expect(c.tls.enabled);
        cr_expect_str_eq(c.tls.cert, before.tls.cert);
        cr_expect_str_eq(c.tls.key, before.tls.key);
    }
}

Test(config_tls, help_lists_tls_entries) {
    char *help = help_text();
    const char *tls = strstr(help, "\n  tls ");
    cr_assert_not_null(tls, "%s", help);
    const char *c = strstr(tls, "\n    cert "), *k = strstr(tls, "\n    key ");
    cr_expect(c && k, "%s", help);
    cr_expect(strstr(tls, "none (plain TCP)") != NULL, "%s", help);
    free(help);
}
