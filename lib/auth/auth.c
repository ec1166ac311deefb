/* auth.c: the MAC input of each upload-URL variant, and the checks around it.
 *
 * Where every field comes from (Prosody's mod_http_upload_external, ejabberd's
 * mod_http_upload, the Go hmac-file-server and its ejabberd modules) is
 * written down with worked examples in docs/protocol.md. The query string is
 * parsed here rather than by lib/http because only the signature parameters
 * matter and each gets its own strict limit. */
#define _GNU_SOURCE             /* memrchr */
#include "lib/auth/auth.h"
#include "lib/util/hex.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MAC_LEN         32
#define HEX_LEN         (2 * MAC_LEN)
#define B64_LEN         44      /* 32 bytes: 43 symbols and one '=' */
#define NUM_MAX         19      /* digits of a non-negative int64 */
#define MAX_PARTS       11
#define OCTET_STREAM    "application/octet-stream"

/* The Go server checks a mod_http_upload_hmac token against issue time =
 * expiry - 3600 (the module's default token_expiry), and a network-resilient
 * one against expiry - 86400 (its extended_token_expiry): the issue time is
 * signed but never sent, so these constants are part of the wire format. */
#define TOKEN_LIFETIME      3600
#define TOKEN_NR_LIFETIME   86400
#define TOKEN_NR_TAIL       "\0network_resilient"

enum { P_V, P_V2, P_V3, P_TOKEN, P_EXPIRES, P_EXPIRY, P_USER, P_COUNT };

static const char *const param_names[P_COUNT] = {
    "v", "v2", "v3", "token", "expires", "expiry", "user"
};

/* Highest first; see auth.h for why this order. */
static const struct {
    int               param;
    enum auth_variant variant;
} precedence[] = {
    { P_V3, AUTH_V3 }, { P_V2, AUTH_V2 }, { P_TOKEN, AUTH_TOKEN },
    { P_V, AUTH_V1 }
};

struct slice {
    const char *p;              /* NULL: parameter absent */
    size_t      len;
};

/* The signature as the query carried it, decoded. */
struct sig {
    enum auth_variant variant;
    unsigned char     mac[MAC_LEN];
    char              expires[NUM_MAX + 1];   /* v3 signs the string as sent */
    size_t            expires_len;
    time_t            expiry;
    char              user[AUTH_USER_MAX];
    size_t            user_len;
};

struct part {
    const void *p;
    size_t      len;
};

/* Decimal renderings that MAC inputs point into. */
struct numbers {
    char size[24], issued[24], expiry[24];
};

struct writer {
    char   *p;
    size_t  cap, len;
    int     overflow;
};


static int
fail(struct auth_result *out, enum auth_status status, const char *reason)
{
    out->status = status;
    out->reason = reason;
    return -1;
}


static int
binds_size(enum auth_variant v)
{
    return v == AUTH_V1 || v == AUTH_V2 || v == AUTH_TOKEN
           || v == AUTH_TOKEN_NR;
}


static int
has_expiry(enum auth_variant v)
{
    return v == AUTH_V3 || v == AUTH_TOKEN || v == AUTH_TOKEN_NR;
}




static int
b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}


/* RFC 3986 decoding: '+' stays '+', because the Erlang token module puts raw
 * base64 (with '+') into the URL; application/x-www-form-urlencoded rules
 * would turn it into a space. A decoded NUL is refused: it is the field
 * separator of v2 and token MAC inputs. Returns 0, -1 bad escape or NUL,
 * -2 longer than cap. */
static int
pct_decode(const char *s, size_t len, char *dst, size_t cap, size_t *outlen)
{
    size_t i, o = 0;
    int    hi, lo;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            hi = hex_value((unsigned char)s[i + 1]);
            lo = hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0')
            return -1;
        if (o == cap)
            return -2;
        dst[o++] = (char)c;
    }
    *outlen = o;
    return 0;
}


static int
take_param(const char *p, const char *end, struct slice found[P_COUNT],
           struct auth_result *out)
{
    const char *eq = memchr(p, '=', (size_t)(end - p));
    const char *kend = eq ? eq : end;
    char        key[8];
    size_t      klen;
    int         i, rc;

    rc = pct_decode(p, (size_t)(kend - p), key, sizeof(key), &klen);
    if (rc == -2)
        return 0;               /* longer than any name we look for */
    if (rc == -1)
        return fail(out, AUTH_MALFORMED, "malformed percent-encoding");
    for (i = 0; i < P_COUNT; i++) {
        if (strlen(param_names[i]) != klen
            || memcmp(param_names[i], key, klen) != 0)
            continue;
        if (found[i].p != NULL)
            return fail(out, AUTH_MALFORMED, "duplicate signature parameter");
        found[i].p = eq ? eq + 1 : end;
        found[i].len = (size_t)(end - found[i].p);
        return 0;
    }
    return 0;
}


static int
split_query(const char *q, struct slice found[P_COUNT], struct auth_result *out)
{
    const char *p, *end, *amp;
    size_t      qlen, nparams = 0;

    memset(found, 0, P_COUNT * sizeof(found[0]));
    if (q == NULL)
        return 0;
    qlen = strnlen(q, AUTH_QUERY_MAX + 1);
    if (qlen > AUTH_QUERY_MAX)
        return fail(out, AUTH_MALFORMED, "query string too long");
    for (p = q, end = q + qlen; p < end; p = amp + 1) {
        amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL)
            amp = end;
        if (amp == p)
            continue;
        if (++nparams > AUTH_PARAMS_MAX)
            return fail(out, AUTH_MALFORMED, "too many query parameters");
        if (take_param(p, amp, found, out) == -1)
            return -1;
    }
    return 0;
}


static int
decode_hex_mac(const struct slice *v, unsigned char mac[MAC_LEN],
               struct auth_result *out)
{
    char   buf[2 * HEX_LEN];
    size_t len, i;
    int    rc, hi, lo;

    rc = pct_decode(v->p, v->len, buf, sizeof(buf), &len);
    if (rc == -1)
        return fail(out, AUTH_MALFORMED, "malformed percent-encoding");
    if (rc == -2)
        return fail(out, AUTH_MALFORMED, "signature has the wrong length");
    if (len % 2 != 0)
        return fail(out, AUTH_MALFORMED, "signature has an odd length");
    if (len != HEX_LEN)
        return fail(out, AUTH_MALFORMED, "signature has the wrong length");
    for (i = 0; i < MAC_LEN; i++) {
        hi = hex_value((unsigned char)buf[2 * i]);
        lo = hex_value((unsigned char)buf[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return fail(out, AUTH_MALFORMED, "signature is not hex");
        mac[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}


/* Standard alphabet with its one '=' of padding, as Erlang's base64:encode
 * writes it; anything else (a hex v2-style `token`, which the Go server
 * also accepts, see docs/protocol.md) is refused. */
static int
decode_b64_mac(const struct slice *v, unsigned char mac[MAC_LEN],
               struct auth_result *out)
{
    char     buf[2 * B64_LEN];
    size_t   len, i, o = 0;
    uint32_t acc = 0;
    int      rc, bits = 0, d;

    rc = pct_decode(v->p, v->len, buf, sizeof(buf), &len);
    if (rc == -1)
        return fail(out, AUTH_MALFORMED, "malformed percent-encoding");
    if (rc == -2 || len != B64_LEN)
        return fail(out, AUTH_MALFORMED,
                    "token has the wrong length (want 44 base64 characters)");
    if (buf[B64_LEN - 1] != '=')
        return fail(out, AUTH_MALFORMED, "token is not base64");
    for (i = 0; i < B64_LEN - 1; i++) {
        if ((d = b64val((unsigned char)buf[i])) < 0)
            return fail(out, AUTH_MALFORMED, "token is not base64");
        acc = acc << 6 | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o < MAC_LEN)
                mac[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return 0;
}


static int
decode_expiry(const struct slice *v, const char *missing, struct sig *s,
              struct auth_result *out)
{
    int64_t n = 0;
    size_t  i;

    if (v->p == NULL || v->len == 0)
        return fail(out, AUTH_MALFORMED, missing);
    if (pct_decode(v->p, v->len, s->expires, NUM_MAX, &s->expires_len) != 0
        || s->expires_len == 0)
        return fail(out, AUTH_MALFORMED, "malformed expiry time");
    s->expires[s->expires_len] = '\0';
    for (i = 0; i < s->expires_len; i++) {
        int d = s->expires[i] - '0';
        if (d < 0 || d > 9 || n > (INT64_MAX - d) / 10)
            return fail(out, AUTH_MALFORMED, "malformed expiry time");
        n = n * 10 + d;
    }
    s->expiry = (time_t)n;
    return 0;
}


static int
decode_user(const struct slice *v, struct sig *s, struct auth_result *out)
{
    int rc;

    if (v->p == NULL || v->len == 0)
        return fail(out, AUTH_MALFORMED, "missing user parameter");
    rc = pct_decode(v->p, v->len, s->user, sizeof(s->user), &s->user_len);
    if (rc == -1)
        return fail(out, AUTH_MALFORMED, "malformed percent-encoding");
    if (rc == -2)
        return fail(out, AUTH_MALFORMED, "user parameter too long");
    return 0;
}


static int
decode_sig(const struct slice found[P_COUNT], struct sig *s,
           struct auth_result *out)
{
    const struct slice *v = NULL;
    size_t              i;

    memset(s, 0, sizeof(*s));
    for (i = 0; i < sizeof(precedence) / sizeof(precedence[0]); i++) {
        if (found[precedence[i].param].p != NULL) {
            v = &found[precedence[i].param];
            s->variant = precedence[i].variant;
            break;
        }
    }
    if (v == NULL)
        return fail(out, AUTH_NO_SIGNATURE,
                    "missing signature (v, v2, v3 or token)");
    switch (s->variant) {
    case AUTH_V3:
        if (decode_hex_mac(v, s->mac, out) == -1)
            return -1;
        return decode_expiry(&found[P_EXPIRES], "missing expires parameter",
                             s, out);
    case AUTH_TOKEN:
        if (decode_b64_mac(v, s->mac, out) == -1)
            return -1;
        if (decode_expiry(&found[P_EXPIRY], "missing expiry parameter",
                          s, out) == -1)
            return -1;
        return decode_user(&found[P_USER], s, out);
    default:
        return decode_hex_mac(v, s->mac, out);
    }
}


/* The token binds only the file name (the last path segment), not the
 * directory: that is what the Go server checks. */
static void
last_segment(const struct auth_request *req, struct part *p)
{
    const char *slash = memrchr(req->path, '/', req->path_len);

    p->p = slash ? slash + 1 : req->path;
    p->len = req->path_len - (size_t)((const char *)p->p - req->path);
}


#define PART(ptr, n)   (parts[k].p = (ptr), parts[k].len = (n), k++)
#define PARTS(str)     PART(str, strlen(str))

/* Fills parts with the MAC input of variant v (docs/protocol.md), using
 * num for the decimal strings it renders; ct is the content type a v2 MAC
 * is tried with (see v2_types). Returns the number of parts. */
static size_t
mac_input(enum auth_variant v, const struct auth_request *req,
          const struct sig *s, const char *ct, struct numbers *num,
          struct part parts[MAX_PARTS])
{
    const char *size = num->size;
    size_t      k = 0;

    snprintf(num->size, sizeof(num->size), "%" PRId64, req->content_length);
    switch (v) {
    case AUTH_V1:
        PART(req->path, req->path_len); PARTS(" "); PARTS(size);
        break;
    case AUTH_V2:
        PART(req->path, req->path_len); PART("", 1); PARTS(size);
        PART("", 1); PARTS(ct);
        break;
    case AUTH_V3:
        PARTS(req->method); PARTS("\n"); PART(s->expires, s->expires_len);
        PARTS("\n"); PARTS(req->prefix ? req->prefix : "/");
        PART(req->path, req->path_len);
        break;
    case AUTH_TOKEN:
    case AUTH_TOKEN_NR:
        /* Go renders these with %d from the parsed expiry */
        snprintf(num->issued, sizeof(num->issued), "%" PRId64,
                 (int64_t)s->expiry - (v == AUTH_TOKEN ? TOKEN_LIFETIME
                                                       : TOKEN_NR_LIFETIME));
        snprintf(num->expiry, sizeof(num->expiry), "%" PRId64,
                 (int64_t)s->expiry);
        PART(s->user, s->user_len); PART("", 1);
        last_segment(req, &parts[k++]); PART("", 1);
        PARTS(size); PART("", 1); PARTS(num->issued);
        if (v == AUTH_TOKEN_NR) {
            PART("", 1); PARTS(num->expiry);
            PART(TOKEN_NR_TAIL, sizeof(TOKEN_NR_TAIL) - 1);
        }
        break;
    default:
        break;
    }
    return k;
}

#undef PART
#undef PARTS


struct auth_prepared {
    EVP_MAC_CTX *ctx;       /* initialised with the key; never updated */
};

static EVP_MAC_CTX *
keyed_ctx(const struct auth_key *key)
{
    OSSL_PARAM   params[2];
    EVP_MAC     *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;

    EVP_MAC_free(alg);      /* the context holds its own reference */
    if (ctx == NULL)
        return NULL;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_init(ctx, key->key, key->len, params)) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int
auth_key_prepare(struct auth_key *key)
{
    struct auth_prepared *p;

    key->prepared = NULL;
    if (key->key == NULL || key->len == 0
        || (p = OPENSSL_zalloc(sizeof(*p))) == NULL)
        return -1;
    if ((p->ctx = keyed_ctx(key)) == NULL) {
        OPENSSL_free(p);
        return -1;
    }
    key->prepared = p;
    return 0;
}

void
auth_key_release(struct auth_key *key)
{
    struct auth_prepared *p = (struct auth_prepared *)key->prepared;

    if (p == NULL)
        return;
    EVP_MAC_CTX_free(p->ctx);   /* clears the keyed state it holds */
    OPENSSL_free(p);
    key->prepared = NULL;
}

/* A copy of the prepared state, else one derived from the key now. */
static int
hmac_parts(const struct auth_key *key, const struct part *parts, size_t n,
           unsigned char mac[MAC_LEN])
{
    EVP_MAC_CTX *ctx;
    size_t       outl = 0, i;
    int          ok = 1;

    ctx = key->prepared ? EVP_MAC_CTX_dup(key->prepared->ctx)
                        : keyed_ctx(key);
    if (ctx == NULL)
        return -1;
    for (i = 0; ok && i < n; i++)
        ok = EVP_MAC_update(ctx, parts[i].p, parts[i].len);
    ok = ok && EVP_MAC_final(ctx, mac, &outl, MAC_LEN) && outl == MAC_LEN;
    EVP_MAC_CTX_free(ctx);
    return ok ? 0 : -1;
}


static int
mac_of(const struct auth_key *key, enum auth_variant v,
       const struct auth_request *req, const struct sig *s, const char *ct,
       unsigned char mac[MAC_LEN])
{
    struct part    parts[MAX_PARTS];
    struct numbers num;
    size_t         n = mac_input(v, req, s, ct, &num, parts);

    return hmac_parts(key, parts, n, mac);
}


/* The content types a v2 MAC may bind for this request. A header that was
 * sent binds exactly its bytes, an empty one the empty string. Without the
 * header the client gave no type, and Prosody signed one of the two ways it
 * writes "no type": "application/octet-stream" when the slot request had no
 * content-type, "" when it had content-type="" (Converse.js for a file the
 * browser knows no type of). No other type verifies without the header. */
static size_t
v2_types(const struct auth_request *req, const char *types[2])
{
    if (req->content_type != NULL) {
        types[0] = req->content_type;
        return 1;
    }
    types[0] = OCTET_STREAM;
    types[1] = "";
    return 2;
}


/* Returns 1 and sets s->variant to the form that matched, 0 if no key
 * verifies, -1 on an OpenSSL failure. A token URL is tried in both forms
 * the ejabberd modules emit, a v2 URL without Content-Type in both forms
 * of "no type" (v2_types). */
static int
verify(const struct auth_key *keys, size_t nkeys,
       const struct auth_request *req, struct sig *s)
{
    static const enum auth_variant token_forms[] = {
        AUTH_TOKEN, AUTH_TOKEN_NR
    };
    unsigned char mac[MAC_LEN];
    const char   *types[2] = { NULL, NULL };
    size_t        i, f, t, nforms = s->variant == AUTH_TOKEN ? 2 : 1;
    size_t        ntypes = s->variant == AUTH_V2 ? v2_types(req, types) : 1;

    for (i = 0; i < nkeys; i++) {
        for (f = 0; f < nforms; f++) {
            enum auth_variant v = nforms == 2 ? token_forms[f] : s->variant;
            for (t = 0; t < ntypes; t++) {
                if (mac_of(&keys[i], v, req, s, types[t], mac) == -1)
                    return -1;
                if (CRYPTO_memcmp(mac, s->mac, MAC_LEN) == 0) {
                    s->variant = v;
                    return 1;
                }
            }
        }
    }
    return 0;
}


static int
check_time(const struct sig *s, const struct auth_request *req,
           time_t max_lifetime, struct auth_result *out)
{
    if (!has_expiry(s->variant))
        return 0;
    if (req->now > s->expiry)
        return fail(out, AUTH_EXPIRED, "signature expired");
    /* expiry >= now here, so the unsigned difference cannot wrap */
    if (max_lifetime > 0
        && (uint64_t)s->expiry - (uint64_t)req->now > (uint64_t)max_lifetime)
        return fail(out, AUTH_TOO_LONG,
                    "signature expiry is further out than this server allows");
    return 0;
}


static int
args_ok(const struct auth_key *keys, size_t nkeys,
        const struct auth_request *req)
{
    size_t i;

    if (keys == NULL || nkeys == 0 || req == NULL || req->path == NULL
        || req->method == NULL || req->content_length < -1)
        return 0;
    for (i = 0; i < nkeys; i++)
        if (keys[i].key == NULL || keys[i].len == 0)
            return 0;
    return 1;
}


int
auth_check(const struct auth_key *keys, size_t nkeys,
           const struct auth_request *req, time_t max_lifetime,
           struct auth_result *out)
{
    struct slice found[P_COUNT];
    struct sig   s;
    int          rc;

    if (out == NULL)
        return -1;
    out->variant = AUTH_NONE;
    out->signed_size = -1;
    out->expires = 0;
    if (!args_ok(keys, nkeys, req))
        return fail(out, AUTH_ERROR, "internal error");
    if (split_query(req->query, found, out) == -1
        || decode_sig(found, &s, out) == -1)
        return -1;
    out->variant = s.variant;
    out->expires = has_expiry(s.variant) ? s.expiry : 0;
    if (binds_size(s.variant) && req->content_length == -1) {
        if (check_time(&s, req, max_lifetime, out) == -1)
            return -1;
        return fail(out, AUTH_SIZE_UNKNOWN,
                    "the signature binds the size, which is not known yet");
    }
    if ((rc = verify(keys, nkeys, req, &s)) == -1)
        return fail(out, AUTH_ERROR, "internal error");
    out->variant = s.variant;
    if (rc == 0)
        return fail(out, AUTH_BAD_MAC, "signature mismatch");
    if (check_time(&s, req, max_lifetime, out) == -1)
        return -1;
    out->signed_size = binds_size(s.variant) ? req->content_length : -1;
    out->status = AUTH_OK;
    out->reason = "authorised";
    return 0;
}


static void
put(struct writer *w, const char *s, size_t len)
{
    if (w->overflow || w->cap - w->len <= len) {
        w->overflow = 1;
        return;
    }
    memcpy(w->p + w->len, s, len);
    w->len += len;
    w->p[w->len] = '\0';
}


/* Everything but RFC 3986 unreserved characters is escaped, so '+', '/',
 * '=' of base64 and '@' of a JID survive any query parser. */
static void
put_pct(struct writer *w, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t            i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char          esc[3] = { '%', hex[c >> 4], hex[c & 15] };
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
            || c == '~')
            put(w, (const char *)&s[i], 1);
        else
            put(w, esc, 3);
    }
}


static void
put_query(struct writer *w, const struct sig *s, const unsigned char *mac)
{
    static const char hex[] = "0123456789abcdef";
    char              text[HEX_LEN + 1];
    size_t            i;

    if (s->variant == AUTH_TOKEN || s->variant == AUTH_TOKEN_NR) {
        EVP_EncodeBlock((unsigned char *)text, mac, MAC_LEN);
        put(w, "token=", 6); put_pct(w, text, B64_LEN);
        put(w, "&user=", 6); put_pct(w, s->user, s->user_len);
        put(w, "&expiry=", 8); put(w, s->expires, s->expires_len);
        return;
    }
    for (i = 0; i < MAC_LEN; i++) {
        text[2 * i] = hex[mac[i] >> 4];
        text[2 * i + 1] = hex[mac[i] & 15];
    }
    put(w, s->variant == AUTH_V1 ? "v=" : s->variant == AUTH_V2 ? "v2=" : "v3=",
        s->variant == AUTH_V1 ? 2 : 3);
    put(w, text, HEX_LEN);
    if (s->variant == AUTH_V3) {
        put(w, "&expires=", 9);
        put(w, s->expires, s->expires_len);
    }
}


int
auth_sign(enum auth_variant variant, const struct auth_key *key,
          const struct auth_request *req, const char *user, time_t expires,
          char *query_out, size_t outlen)
{
    struct writer w = { query_out, outlen, 0, 0 };
    struct sig    s;
    unsigned char mac[MAC_LEN];
    int           token = variant == AUTH_TOKEN || variant == AUTH_TOKEN_NR;

    if (query_out == NULL || outlen == 0 || !args_ok(key, 1, req)
        || variant < AUTH_V1 || variant > AUTH_TOKEN_NR)
        return -1;
    query_out[0] = '\0';
    if ((binds_size(variant) && req->content_length < 0)
        || (has_expiry(variant) && expires < 0)
        || (token && (user == NULL || *user == '\0'
                      || strlen(user) >= AUTH_USER_MAX)))
        return -1;
    memset(&s, 0, sizeof(s));
    s.variant = variant;
    s.expiry = expires;
    s.expires_len = (size_t)snprintf(s.expires, sizeof(s.expires), "%" PRId64,
                                     (int64_t)expires);
    if (token) {
        s.user_len = strlen(user);
        memcpy(s.user, user, s.user_len);
    }
    /* Without a type, sign what Prosody signs for a slot without one. */
    if (mac_of(key, variant, req, &s, req->content_type ? req->content_type
                                                        : OCTET_STREAM,
               mac) == -1)
        return -1;
    put_query(&w, &s, mac);
    return w.overflow ? -1 : 0;
}


const char *
auth_variant_name(enum auth_variant variant)
{
    switch (variant) {
    case AUTH_V1:       return "v1";
    case AUTH_V2:       return "v2";
    case AUTH_V3:       return "v3";
    case AUTH_TOKEN:    return "token";
    case AUTH_TOKEN_NR: return "token-network-resilient";
    default:            return "none";
    }
}
