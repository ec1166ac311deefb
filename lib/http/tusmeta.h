/* tusmeta: the tus 1.0.0 Upload-Metadata header, checked strictly.
 *
 *   Upload-Metadata: filename cGhvdG8uanBn,filetype aW1hZ2UvanBlZw==,private
 *
 * Comma-separated pairs "key base64value"; the key is not empty and has no
 * space or comma; keys are unique; the value may be empty, and its space
 * left out. Spaces and tabs around a pair are allowed (HTTP list syntax, as
 * the tus reference servers trim them). Pure: no allocation, no I/O; the
 * pairs point into the caller's string. */
#ifndef LIB_HTTP_TUSMETA_H
#define LIB_HTTP_TUSMETA_H

#include <stddef.h>

#define TUSMETA_PAIRS_MAX 64      /* keys per upload: bounds the unique check */

struct tusmeta_pair {
    const char *key, *value;      /* value: base64 as sent, maybe empty */
    size_t      key_len, value_len;
};

struct tusmeta {
    struct tusmeta_pair pair[TUSMETA_PAIRS_MAX];
    size_t              n;
};

/* 0, or -1 with `err` naming the first fault (and the key, if it has one
 * that can be printed). An empty or blank header is no metadata (n = 0). */
int tusmeta_parse(const char *hdr, struct tusmeta *m, char *err,
                  size_t errlen);
/* The pair with this key, or NULL. */
const struct tusmeta_pair *tusmeta_find(const struct tusmeta *m,
                                        const char *key);

#endif
