/*
 * Gears the loader must refuse, one per VARIANT, and one it must serve:
 * each built as its own shared object (tests/gears/CMakeLists.txt) and
 * dropped into a test's gears_dir (tests/integration/gears.test.mjs).
 */
#include <orrery/gear.h>

#include <string.h>

static int echo_message(orr_conn *c, void **state, int opcode, const uint8_t *data, size_t len) {
    (void)state;
    return opcode == ORR_TEXT ? orr_conn_send_text(c, data, len)
                              : orr_conn_send_binary(c, data, len);
}

#if defined(VARIANT_UNRESOLVED)
/* A function no server exports: dlopen (RTLD_NOW) refuses the object. */
int orr_not_in_the_api(orr_conn *c);
static int init(orr_conn *c, void **state) {
    (void)state;
    return orr_not_in_the_api(c);
}
#else
static int init(orr_conn *c, void **state) {
    (void)c;
    (void)state;
    return 0;
}
#endif

#if defined(VARIANT_HOOKS)
#include <stdio.h>
/* Its gear_config {"mark": PATH}: on_load and on_unload each append a
 * line to that file, so a test sees when they ran, and in which version
 * (each version is its own object, with its own copy of `mark`). */
static char mark[512];

static void note(const char *what) {
    FILE *f = mark[0] ? fopen(mark, "a") : NULL;
    if (!f) return;
    fprintf(f, "%s\n", what);
    fclose(f);
}

static int on_load(const char *config_json, size_t len) {
    (void)len;
    const char *p = strstr(config_json, "\"mark\":\"");
    if (p) {
        p += 8;
        size_t n = 0;
        while (p[n] && p[n] != '"' && n < sizeof mark - 1)
            n++;
        memcpy(mark, p, n);
        mark[n] = '\0';
    }
    note("load");
    return 0;
}

static void on_unload(void) {
    note("unload");
}
#endif

#if defined(VARIANT_REFUSE)
static int on_load(const char *config_json, size_t len) {
    (void)len;
    /* Refuses unless its config says {"ok": true}. */
    return strstr(config_json, "\"ok\":true") ? 0 : -1;
}
#endif

static const orr_ws_callbacks callbacks = {.init = init, .on_client_message = echo_message};

#if defined(VARIANT_BADROUTE)
static const orr_ws_route routes[] = {{"no-leading-slash", &callbacks}};
#else
static const orr_ws_route routes[] = {{"/ws", &callbacks}};
#endif

static const orr_gear gear = {
#if defined(VARIANT_API999)
    .api_version = 999,
#elif defined(VARIANT_NEWER_MINOR)
    .api_version = (ORR_GEAR_API_MAJOR << 16) | 99,
#else
    .api_version = ORR_GEAR_API_VERSION,
#endif
#if defined(VARIANT_BADNAME)
    .name = "Bad-Name",
#elif defined(VARIANT_DUP)
    .name = "echo",
#else
    .name = GEAR_NAME,
#endif
    .ws_routes = routes,
    .n_ws_routes = 1,
#if defined(VARIANT_REFUSE)
    .on_load = on_load,
#endif
#if defined(VARIANT_HOOKS)
    .on_load = on_load,
    .on_unload = on_unload,
#endif
};

#if defined(VARIANT_NOENTRY)
/* Exports something, but not orr_gear_entry: not a gear. */
const orr_gear *not_a_gear(void);
__attribute__((visibility("default"))) const orr_gear *not_a_gear(void) {
    return &gear;
}
#else
const orr_gear *orr_gear_entry(void) {
    return &gear;
}
#endif
