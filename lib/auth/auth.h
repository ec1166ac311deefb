/* auth: verifies the signed PUT URLs that XMPP servers hand out (XEP-0363).
 *
 * Pure: no I/O, no logging, no global state, no allocation outside
 * auth_key_prepare (and OpenSSL's own for each MAC). The exact MAC
 * input of every variant, where each comes from and worked examples are in
 * docs/protocol.md ("Upload authorisation").
 *
 * When a URL carries several signature parameters only the highest one
 * counts (Prosody's README: "upload services MUST only use the token from the
 * highest parameter version that they support"); the order is the Go
 * hmac-file-server's: v3 > v2 > token > v. ejabberd's external_secret emits
 * exactly Prosody's v1 (`?v=`), so it is reported as AUTH_V1. */
#ifndef LIB_AUTH_AUTH_H
#define LIB_AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define AUTH_QUERY_MAX   4096   /* longer query strings are refused */
#define AUTH_PARAMS_MAX  32     /* more &-separated parameters are refused */
#define AUTH_USER_MAX    2048   /* decoded `user` of a token (a bare JID) */

enum auth_variant {
    AUTH_NONE = 0,
    AUTH_V1,        /* ?v=      Prosody v1, ejabberd external_secret      */
    AUTH_V2,        /* ?v2=     Prosody v2 (binds the content type)      */
    AUTH_V3,        /* ?v3=&expires=       hmac-file-server v3           */
    AUTH_TOKEN,     /* ?token=&user=&expiry=  mod_http_upload_hmac       */
    AUTH_TOKEN_NR   /* the same URL from ..._network_resilient           */
};

enum auth_status {
    AUTH_OK,
    AUTH_NO_SIGNATURE,  /* 403: no v/v2/v3/token parameter at all */
    AUTH_MALFORMED,     /* 400: bad hex/base64, bad number, over limits */
    AUTH_BAD_MAC,       /* 403 */
    AUTH_EXPIRED,       /* 403: now > expiry */
    AUTH_TOO_LONG,      /* 403: expiry beyond now + max_lifetime */
    AUTH_SIZE_UNKNOWN,  /* variant binds the size; call again with it */
    AUTH_ERROR          /* 500: bad arguments or OpenSSL failure */
};

struct auth_request {
    const char *method;         /* "PUT"; bound by v3 only */
    const char *prefix;         /* decoded URL prefix the path is relative
                                   to, "/" or "/upload/"; NULL = "/".
                                   v3 signs prefix+path, the others path */
    const char *path;           /* percent-DECODED, relative to prefix, no
                                   leading '/': "5d6f.../my photo.jpg" */
    size_t      path_len;       /* any byte but NUL (validated elsewhere) */
    const char *query;          /* raw query after '?', NOT decoded; NULL ok */
    int64_t     content_length; /* -1 while unknown (chunked body) */
    const char *content_type;   /* header value, "" when sent empty, NULL
                                   when absent: v2 then verifies against
                                   both "application/octet-stream" and ""
                                   (Prosody's two ways to sign no type) */
    time_t      now;            /* when the request head arrived: pass the
                                   same value again on the re-check */
};

struct auth_prepared;

struct auth_key {
    const unsigned char *key;
    size_t               len;   /* must be > 0 */
    /* Optional (NULL: none): the key's HMAC state from auth_key_prepare.
     * Deriving it (the inner and outer padded key, two SHA-256 blocks,
     * and fetching the algorithm) cost 1.6 us of a check; with it, a
     * check copies the state instead. */
    const struct auth_prepared *prepared;
};

/* Derives key's HMAC-SHA256 state once, for every later auth_check with
 * it: the one function here that allocates. key->key must outlive it.
 * 0, or -1 (OpenSSL failed: key is left unprepared, and still works). */
int  auth_key_prepare(struct auth_key *key);
/* Frees what auth_key_prepare made; key->prepared is NULL after. */
void auth_key_release(struct auth_key *key);

struct auth_result {
    enum auth_status  status;
    enum auth_variant variant;      /* the parameter that counted */
    int64_t           signed_size;  /* bound size once verified, else -1 */
    time_t            expires;      /* v3/token expiry, 0 = none */
    const char       *reason;       /* static, safe to send to the client */
};

/* Returns 0 iff out->status == AUTH_OK. Any one of the keys may verify
 * (rotation). For v1, v2 and tokens the size is inside the MAC, so with
 * content_length == -1 nothing but syntax and expiry can be checked: the
 * answer is AUTH_SIZE_UNKNOWN (with out->variant set), and the caller must
 * call auth_check again with the final size, and the same `now`, before it
 * publishes the file. Once the size is known, expiry is checked after the
 * MAC, so AUTH_EXPIRED and AUTH_TOO_LONG then mean the URL was genuine.
 * max_lifetime <= 0: no bound. */
int auth_check(const struct auth_key *keys, size_t nkeys,
               const struct auth_request *req, time_t max_lifetime,
               struct auth_result *out);

/* Writes the query string (no '?') a signer would append for this request,
 * NUL-terminated, e.g. "v3=<hex>&expires=<n>". `expires` is used by v3 and
 * tokens; `user` (bare JID) by tokens only. Returns -1 if the variant needs
 * a size and content_length is -1, if a needed argument is missing, or if
 * outlen is too small. v2 signs content_type NULL as Prosody does a slot
 * without a type: "application/octet-stream". For tests and SDK tooling;
 * the daemon never signs. */
int auth_sign(enum auth_variant variant, const struct auth_key *key,
              const struct auth_request *req, const char *user,
              time_t expires, char *query_out, size_t outlen);

const char *auth_variant_name(enum auth_variant variant);

#endif
