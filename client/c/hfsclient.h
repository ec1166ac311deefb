/* hfsclient.h: libhfsclient, a resumable uploader for hmac-file-server (and
 * any server speaking its chunked protocol, docs/protocol.md "Chunked uploads
 * with X-Upload-Session-ID"). This header is the library's whole interface.
 *
 *   struct hfs_upload_opts o;
 *   struct hfs_result r;
 *   hfs_upload_opts_init(&o);              // 5 MiB chunks, 5 retries, 2 s
 *   o.state_file = "photo.jpg.hfs-state";  // resume after a restart
 *   if (hfs_upload_file("photo.jpg", put_url, &o, &r) != HFS_OK)
 *       fprintf(stderr, "upload failed: %s\n", r.message);
 *
 * An upload is one session (X-Upload-Session-ID) whose chunks are PUT with
 * Content-Range to the signed URL, up to 4 at once (curl multi). After any
 * failure, and before resuming a saved session, the library asks the server
 * what it holds (HEAD, X-Upload-Ranges) and sends only the rest: a byte the
 * server acknowledged is never sent again. Failures are retried with
 * exponential back-off and jitter; a 503's Retry-After is waited out; a 4xx
 * other than 408, 409, 423 and 429 is final and reported with the server's
 * text. Needs libcurl (initialised by the caller or by the first call here)
 * and OpenSSL's libcrypto. Link: -lhfsclient -lcurl -lcrypto.
 *
 * Thread safety: calls share no state; one upload per thread is fine once
 * curl_global_init has been called. */
#ifndef HFSCLIENT_H
#define HFSCLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define HFS_DEFAULT_CHUNK     (5u << 20)   /* 5 MiB */
#define HFS_DEFAULT_RETRIES   5
#define HFS_DEFAULT_DELAY     2.0          /* seconds, first back-off */
#define HFS_DEFAULT_MAX_DELAY 60.0         /* seconds, back-off cap */
#define HFS_PARALLEL_MAX      4
#define HFS_SESSION_ID_MAX    128

enum hfs_status {
    HFS_OK = 0,
    HFS_E_ARGS,      /* bad option or URL */
    HFS_E_LOCAL,     /* the local file (or output file) could not be used */
    HFS_E_REFUSED,   /* the server refused for good (4xx): see message */
    HFS_E_GAVE_UP,   /* max_retries failures in a row: see message */
    HFS_E_DIGEST,    /* 460: the server's SHA-256 differs from ours */
    HFS_E_STATE,     /* the state file could not be written or is unusable */
    HFS_E_INTERNAL,  /* libcurl or OpenSSL failed */
    HFS_E_CANCELLED  /* *cancel became non-zero; the session (and its state
                        file) is kept: call again to resume */
};

enum hfs_log_level { HFS_LOG_INFO, HFS_LOG_DEBUG };

struct hfs_upload_opts {
    uint64_t    chunk_size;      /* bytes per PUT; 0 = HFS_DEFAULT_CHUNK */
    int         parallel;        /* chunks in flight, 1..HFS_PARALLEL_MAX */
    int         max_retries;     /* failures in a row before giving up;
                                    progress resets the count */
    double      retry_delay;     /* seconds: delay n is retry_delay*2^(n-1),
                                    with jitter, at most max_delay */
    double      max_delay;
    const char *session_id;      /* NULL: 128 random bits, or the state's */
    int         sha256;          /* 1: announce the file's SHA-256
                                    (X-Content-SHA256) so the server checks */
    const char *state_file;      /* NULL: none. Else remembers the session
                                    here; a later call with the same file,
                                    URL and state file resumes it. Removed
                                    when the upload is complete. */
    const char *content_type;    /* Content-Type of every chunk (v2 URLs
                                    bind it); NULL: none sent */
    long        connect_timeout; /* seconds; 0 = 15 */
    long        stall_timeout;   /* seconds without a byte moving before a
                                    transfer counts as failed; 0 = 30 */
    uint64_t    max_send_speed;  /* bytes/s per transfer, 0 = unlimited
                                    (hfs_download: receiving) */
    /* Called as bytes move (often) with what the server holds plus what is
     * in flight (each byte counted once), and the file size. It goes back
     * only when a chunk in flight fails. */
    void      (*on_progress)(void *ud, uint64_t done, uint64_t total);
    /* Retries, waits and status answers, as one line of text. */
    void      (*on_log)(void *ud, enum hfs_log_level lvl, const char *msg);
    void       *userdata;
    /* Set *cancel non-zero (from another thread or a signal handler) to
     * stop within ~0.1 s; NULL: never. */
    volatile int *cancel;
};

struct hfs_result {
    enum hfs_status status;
    long     http_status;        /* last final HTTP answer, 0 if none */
    char     message[512];       /* what failed, server's text included */
    char     session_id[HFS_SESSION_ID_MAX + 1];
    char     sha256[65];         /* hex, when computed */
    uint64_t bytes_sent;         /* body bytes this call put on the wire */
    int      failures;           /* failed requests (retried or not) */
    int      resumed;            /* 1 if the server held bytes at start */
};

void hfs_upload_opts_init(struct hfs_upload_opts *o);

/* Uploads `path` to the signed PUT `url` (signed for the file's size). On
 * HFS_OK the file is published at url without its query. */
enum hfs_status hfs_upload_file(const char *path, const char *url,
                                const struct hfs_upload_opts *o,
                                struct hfs_result *res);

/* GET `url` into `out_path`, resuming a partial `out_path` + ".part" with a
 * Range request (a 200 instead of 206 starts over); renamed to out_path when
 * complete. Uses o's retry, timeout, speed and callback fields only. */
enum hfs_status hfs_download(const char *url, const char *out_path,
                             const struct hfs_upload_opts *o,
                             struct hfs_result *res);

/* ---- pure helpers (no I/O), exposed for tools and tests ---------------- */

struct hfs_range { uint64_t start, end; };   /* [start, end) */

/* Parses X-Upload-Ranges ("0-1048575,3145728-4194303", inclusive ends) into
 * at most max sorted, merged ranges within [0, total). Returns the count, or
 * -1 if the text is malformed, out of bounds or has more than max ranges. */
int hfs_ranges_parse(const char *text, uint64_t total, struct hfs_range *out,
                     int max);

/* The chunks still to send: every hole of `held` (sorted, merged) in
 * [0, total), cut into pieces of at most chunk_size, in file order. Writes
 * at most max; returns how many there are in all (may exceed max). */
int hfs_plan_chunks(const struct hfs_range *held, int nheld, uint64_t total,
                    uint64_t chunk_size, struct hfs_range *out, int max);

/* Back-off before retry n (1-based): d = min(cap, base * 2^(n-1)), returned
 * as d/2 + jitter * d/2 with jitter in [0, 1] (0.5..1 of the full delay). */
double hfs_backoff(int n, double base, double cap, double jitter);

/* Retry-After: delta-seconds or an HTTP-date (relative to now). Seconds to
 * wait (0 for a past date), or -1 if the value is not one of the two. */
long hfs_retry_after(const char *value, time_t now);

/* Whether an HTTP status is worth retrying after a status HEAD: 408, 409,
 * 423, 429, 5xx (except 501 and 505); every other 4xx is final. */
int hfs_status_retryable(long status);

enum hfs_variant { HFS_V1, HFS_V2, HFS_V3, HFS_TOKEN };

/* Signs `url` (http[s]://host[:port]/prefix/path, no query) as an XMPP
 * server would (docs/protocol.md "Upload authorisation"): v1 binds the
 * decoded path relative to `prefix` and size; v2 also content_type (NULL:
 * "application/octet-stream"); v3 binds method "PUT", expires and the whole
 * decoded path; token binds user, file name, size and expires (issued =
 * expires - 3600). Writes url + "?" + query; -1 on a bad argument or a
 * too-small buffer. */
int hfs_sign_url(enum hfs_variant v, const void *secret, size_t secret_len,
                 const char *url, const char *prefix, uint64_t size,
                 const char *content_type, const char *user, int64_t expires,
                 char *out, size_t outlen);

#endif
