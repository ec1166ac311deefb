/* logic.c: libhfsclient's pure parts: range arithmetic, back-off, Retry-After,
 * which answers are retried, and URL signing. No I/O; unit-tested by
 * client/c/test_logic.c. */
#define _GNU_SOURCE
#include "hfsclient.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
parse_u64(const char **p, uint64_t *v)
{
    const char *s = *p;
    uint64_t n = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
        s++;
    }
    *p = s;
    *v = n;
    return 0;
}

static int
cmp_range(const void *a, const void *b)
{
    const struct hfs_range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

int
hfs_ranges_parse(const char *text, uint64_t total, struct hfs_range *out,
                 int max)
{
    int n = 0;
    const char *p = text;
    if (text == NULL || max <= 0)
        return -1;
    while (*p == ' ')
        p++;
    if (*p == '\0')
        return 0;
    for (;;) {
        uint64_t a, b;
        while (*p == ' ')
            p++;
        if (parse_u64(&p, &a) || *p++ != '-' || parse_u64(&p, &b)
            || b < a || b >= total || n == max)
            return -1;
        out[n].start = a;
        out[n].end = b + 1;
        n++;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        if (*p++ != ',')
            return -1;
    }
    qsort(out, (size_t)n, sizeof(*out), cmp_range);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m > 0 && out[i].start <= out[m - 1].end) {
            if (out[i].end > out[m - 1].end)
                out[m - 1].end = out[i].end;
        } else {
            out[m++] = out[i];
        }
    }
    return m;
}

int
hfs_plan_chunks(const struct hfs_range *held, int nheld, uint64_t total,
                uint64_t chunk_size, struct hfs_range *out, int max)
{
    int n = 0;
    uint64_t pos = 0;
    if (chunk_size == 0)
        chunk_size = HFS_DEFAULT_CHUNK;
    for (int i = 0; i <= nheld; i++) {
        uint64_t hole_end = i < nheld ? held[i].start : total;
        if (hole_end > total)
            hole_end = total;
        while (pos < hole_end) {
            uint64_t len = hole_end - pos;
            if (len > chunk_size)
                len = chunk_size;
            if (n < max) {
                out[n].start = pos;
                out[n].end = pos + len;
            }
            n++;
            pos += len;
        }
        if (i < nheld && held[i].end > pos)
            pos = held[i].end;
    }
    return n;
}

double
hfs_backoff(int n, double base, double cap, double jitter)
{
    if (n < 1)
        n = 1;
    if (base < 0)
        base = 0;
    double d = base * ldexp(1.0, n > 60 ? 60 : n - 1);
    if (cap > 0 && d > cap)
        d = cap;
    if (jitter < 0)
        jitter = 0;
    if (jitter > 1)
        jitter = 1;
    return d / 2 + jitter * d / 2;
}

long
hfs_retry_after(const char *value, time_t now)
{
    if (value == NULL)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (isdigit((unsigned char)*value)) {
        const char *p = value;
        uint64_t v;
        if (parse_u64(&p, &v))
            return -1;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '\0')
            return -1;
        return v > 86400 * 365 ? 86400 * 365 : (long)v;
    }
    /* An HTTP-date: "Sun, 06 Nov 1994 08:49:37 GMT" (or the obsolete forms
     * curl_getdate also reads). A bare weekday or junk is not a date. */
    if (strchr(value, ':') == NULL)
        return -1;
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return -1;
    return t <= now ? 0 : (long)(t - now);
}

int
hfs_status_retryable(long status)
{
    switch (status) {
    case 408: case 409: case 423: case 429:
        return 1;
    case 501: case 505:
        return 0;
    default:
        return status >= 500 && status < 600;
    }
}

/* ---- signing ------------------------------------------------------------ */

struct buf {
    char  *p;
    size_t len, cap;
    int    overflow;
};

static void
put(struct buf *b, const void *s, size_t n)
{
    if (b->overflow || b->len + n >= b->cap) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* RFC 3986: everything but unreserved characters is percent-encoded. */
static void
put_pct(struct buf *b, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        if (isalnum(s[i]) || s[i] == '-' || s[i] == '.' || s[i] == '_'
            || s[i] == '~') {
            put(b, &s[i], 1);
        } else {
            char e[3] = { '%', hex[s[i] >> 4], hex[s[i] & 15] };
            put(b, e, 3);
        }
    }
}

/* Percent-decodes s[0..n) into out (NUL-terminated); -1 on a bad escape or
 * a decoded NUL. */
static int
pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1])
                || !isxdigit((unsigned char)s[i + 2]))
                return -1;
            char h[3] = { s[i + 1], s[i + 2], 0 };
            c = (int)strtol(h, NULL, 16);
            i += 2;
            if (c == 0)
                return -1;
        }
        if (j + 1 >= outlen)
            return -1;
        out[j++] = (char)c;
    }
    out[j] = '\0';
    return 0;
}

int
hfs_sign_url(enum hfs_variant v, const void *secret, size_t secret_len,
             const char *url, const char *prefix, uint64_t size,
             const char *content_type, const char *user, int64_t expires,
             char *out, size_t outlen)
{
    char path[4096], msg[8192], num[32], issued[32];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    size_t msglen = 0;

    if (secret == NULL || secret_len == 0 || url == NULL || out == NULL
        || outlen == 0 || strchr(url, '?') || strchr(url, '#'))
        return -1;
    const char *hp = strstr(url, "://");
    if (hp == NULL)
        return -1;
    const char *sl = strchr(hp + 3, '/');
    if (sl == NULL || pct_decode(sl, strlen(sl), path, sizeof(path)))
        return -1;
    if (prefix == NULL || *prefix == '\0')
        prefix = "/";
    size_t pl = strlen(prefix);
    /* "/upload" and "/upload/" name the same prefix. */
    if (prefix[pl - 1] == '/')
        pl--;
    if (strncmp(path, prefix, pl) != 0 || path[pl] != '/' || path[pl + 1] == 0)
        return -1;
    const char *rel = path + pl + 1;   /* relative, no leading '/' */
    snprintf(num, sizeof(num), "%" PRIu64, size);

    switch (v) {
    case HFS_V1:
        msglen = (size_t)snprintf(msg, sizeof(msg), "%s %s", rel, num);
        break;
    case HFS_V2: {
        const char *ct = content_type ? content_type : "application/octet-stream";
        size_t a = strlen(rel), b = strlen(num), c = strlen(ct);
        if (a + b + c + 2 >= sizeof(msg))
            return -1;
        memcpy(msg, rel, a);
        msg[a] = '\0';
        memcpy(msg + a + 1, num, b);
        msg[a + 1 + b] = '\0';
        memcpy(msg + a + b + 2, ct, c);
        msglen = a + b + c + 2;
        break;
    }
    case HFS_V3:
        if (expires < 0)
            return -1;
        msglen = (size_t)snprintf(msg, sizeof(msg), "PUT\n%" PRId64 "\n%s",
                                  expires, path);
        break;
    case HFS_TOKEN: {
        if (user == NULL || *user == '\0' || expires < 3600)
            return -1;
        const char *fn = strrchr(rel, '/');
        fn = fn ? fn + 1 : rel;
        snprintf(issued, sizeof(issued), "%" PRId64, expires - 3600);
        size_t a = strlen(user), b = strlen(fn), c = strlen(num),
               d = strlen(issued);
        if (a + b + c + d + 3 >= sizeof(msg))
            return -1;
        char *m = msg;
        memcpy(m, user, a); m += a; *m++ = '\0';
        memcpy(m, fn, b); m += b; *m++ = '\0';
        memcpy(m, num, c); m += c; *m++ = '\0';
        memcpy(m, issued, d); m += d;
        msglen = (size_t)(m - msg);
        break;
    }
    default:
        return -1;
    }
    if (msglen >= sizeof(msg))
        return -1;
    if (HMAC(EVP_sha256(), secret, (int)secret_len, (unsigned char *)msg,
             msglen, mac, &maclen) == NULL || maclen != 32)
        return -1;

    struct buf b = { out, 0, outlen, 0 };
    out[0] = '\0';
    puts_(&b, url);
    char hex[65];
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    char e[32];
    switch (v) {
    case HFS_V1:
        puts_(&b, "?v=");
        puts_(&b, hex);
        break;
    case HFS_V2:
        puts_(&b, "?v2=");
        puts_(&b, hex);
        break;
    case HFS_V3:
        puts_(&b, "?v3=");
        puts_(&b, hex);
        snprintf(e, sizeof(e), "&expires=%" PRId64, expires);
        puts_(&b, e);
        break;
    case HFS_TOKEN: {
        unsigned char b64[64];
        int n = EVP_EncodeBlock(b64, mac, 32);
        puts_(&b, "?token=");
        put_pct(&b, b64, (size_t)n);
        puts_(&b, "&user=");
        put_pct(&b, (const unsigned char *)user, strlen(user));
        snprintf(e, sizeof(e), "&expiry=%" PRId64, expires);
        puts_(&b, e);
        break;
    }
    }
    if (b.overflow) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}
