/* tusmeta.c: Upload-Metadata (tus 1.0.0 creation). The header is stored
 * verbatim and echoed to whoever holds the upload URL, and one value
 * (filetype) feeds the v2 MAC check, so anything the spec forbids is
 * refused rather than guessed at: a duplicated key would let two readers
 * of the same header see different types. */
#include "lib/http/tusmeta.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int
fault(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fault(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static bool
is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Visible ASCII but the separators: what a key may hold. */
static bool
is_key_char(char ch)
{
    return ch > 0x20 && ch < 0x7f && ch != ',';
}

static bool
is_b64_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')
        || (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

/* Standard base64 with its padding: groups of four, '=' only at the end. */
static bool
b64_valid(const char *v, size_t len)
{
    size_t pad = 0;
    if (len % 4 != 0)
        return false;
    while (pad < 2 && pad < len && v[len - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < len - pad; i++)
        if (!is_b64_char(v[i]))
            return false;
    return true;
}

/* One pair, [p, end) with the surrounding whitespace already trimmed. */
static int
parse_pair(const char *p, const char *end, struct tusmeta *m, char *err,
           size_t errlen)
{
    const char *k = p;
    while (p < end && *p != ' ')
        p++;
    size_t klen = (size_t)(p - k);
    if (klen == 0)
        return fault(err, errlen, "Upload-Metadata has an empty key");
    for (size_t i = 0; i < klen; i++)
        if (!is_key_char(k[i]))
            return fault(err, errlen, "Upload-Metadata key must be "
                         "printable ASCII without spaces or commas");
    const char *v = p < end ? p + 1 : end;      /* past the one space */
    size_t vlen = (size_t)(end - v);
    if (!b64_valid(v, vlen))
        return fault(err, errlen, "Upload-Metadata value of \"%.*s\" is "
                     "not base64 (one space between key and value)",
                     (int)(klen > 64 ? 64 : klen), k);
    for (size_t i = 0; i < m->n; i++)
        if (m->pair[i].key_len == klen && memcmp(m->pair[i].key, k, klen) == 0)
            return fault(err, errlen, "Upload-Metadata key \"%.*s\" is "
                         "repeated", (int)(klen > 64 ? 64 : klen), k);
    if (m->n == TUSMETA_PAIRS_MAX)
        return fault(err, errlen, "Upload-Metadata has more than %d keys",
                     TUSMETA_PAIRS_MAX);
    m->pair[m->n++] = (struct tusmeta_pair){
        .key = k, .key_len = klen, .value = v, .value_len = vlen,
    };
    return 0;
}

int
tusmeta_parse(const char *hdr, struct tusmeta *m, char *err, size_t errlen)
{
    const char *p = hdr;

    m->n = 0;
    while (is_ows(*p))
        p++;
    if (*p == '\0')
        return 0;                       /* blank: no metadata */
    for (;;) {
        const char *end = p + strcspn(p, ","), *next = end;
        while (p < end && is_ows(*p))
            p++;
        while (end > p && is_ows(end[-1]))
            end--;
        if (parse_pair(p, end, m, err, errlen) < 0)
            return -1;
        if (*next == '\0')
            return 0;
        p = next + 1;                   /* a trailing comma: an empty key */
    }
}

const struct tusmeta_pair *
tusmeta_find(const struct tusmeta *m, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < m->n; i++)
        if (m->pair[i].key_len == klen
            && memcmp(m->pair[i].key, key, klen) == 0)
            return &m->pair[i];
    return NULL;
}
