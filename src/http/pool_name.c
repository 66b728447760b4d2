#include "http/pool_name.h"

#include "http/router.h"

#include <string.h>

static int tenant_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
}

int orr_pool_name_check(const char *name, size_t len) {
    if (!name || len >= ORR_POOL_NAME_MAX || memchr(name, '\0', len)) return -1;
    if (len > 5 && memcmp(name, "gear:", 5) == 0) {
        char gear[64];
        if (len - 5 >= sizeof gear) return -1;
        memcpy(gear, name + 5, len - 5);
        gear[len - 5] = '\0';
        return orr_gear_name_valid(gear) ? 0 : -1;
    }
    if (len > 7 && len <= 7 + 64 && memcmp(name, "tenant:", 7) == 0) {
        for (size_t i = 7; i < len; i++)
            if (!tenant_char(name[i])) return -1;
        return 0;
    }
    return -1;
}
