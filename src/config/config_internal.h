/* What the files of src/config share and nobody else needs. */
#ifndef ORR_CONFIG_INTERNAL_H
#define ORR_CONFIG_INTERNAL_H

/*
 * Whether s is a host name: dot-separated labels of ASCII letters, digits and
 * hyphens, each 1 to 63 long, neither starting nor ending with a hyphen, 253
 * bytes in all. A name of digits and dots alone must be a valid IPv4 address.
 * Returns NULL if so, else the reason.
 */
const char *orr__config_check_hostname(const char *s);

#endif
