/* conf_internal: what the loader (conf.c) lends the value setters
 * (conf_value.c): the load in progress, the key table's row, and the
 * helpers that turn a setting into a file:line:key message. Private to
 * lib/conf/; callers use lib/conf/conf.h. */
#ifndef LIB_CONF_CONF_INTERNAL_H
#define LIB_CONF_CONF_INTERNAL_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/conf/conf.h"

#define DAY             86400LL

struct ld {
    struct conf *c;
    const char  *name;          /* for settings libconfig gives no file */
    const char  *text;          /* conf_load_string's text */
    char         incdir[CONF_PATH_MAX];     /* "" = none */
    char         scan_file[2 * CONF_PATH_MAX];  /* text cached in scan_text */
    char        *scan_text;
    char        *err;
    size_t       errlen;
};

struct key;
typedef int setter_fn(struct ld *, const config_setting_t *,
                      const struct key *);

struct key {
    const char *name;
    setter_fn  *set;
    size_t      off, size;      /* field in struct conf */
    long long   min, max;       /* numbers: range; strings: min length */
};

/* "file:line: group.key: <message>" into ld->err; returns -1. */
int __attribute__((format(printf, 3, 4)))
conf_fail(struct ld *ld, const config_setting_t *s, const char *fmt, ...);

/* The text of the file s was read from (cached in ld), or NULL. */
const char *conf_source_text(struct ld *ld, const config_setting_t *s);
/* True if an integer on that line was wrapped by libconfig 1.5's atoi. */
bool conf_line_has_wrapped_int(const char *p, unsigned line);

#endif
