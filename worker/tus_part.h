/* tus_part: what the parts of the tus handler share (tus.c, tus_create.c,
 * tus_patch.c, tus_finish.c) and nothing else includes: the state of one
 * request and the calls between the parts. */
#ifndef WORKER_TUS_PART_H
#define WORKER_TUS_PART_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>

#include "lib/store/manifest.h"
#include "lib/store/retry.h"
#include "worker/syncpool.h"
#include "worker/tus_parse.h"

struct conn;
struct http_head;
struct http_request;
struct sess;
struct shm_view;
struct worker;

#define CHECKPOINT_BYTES  (8ULL * 1024 * 1024)
#define DISCARD_MAX       (64 * 1024)         /* body of a HEAD or DELETE */

enum tus_op { OP_CREATE, OP_HEAD, OP_PATCH, OP_DELETE };

struct tus {
    struct conn     *c;             /* NULL once the connection is gone */
    struct worker   *w;
    enum tus_op      op;
    struct sess     *sess;
    bool             pending;       /* a sess callback will come */
    bool             in_head;       /* inside the parser's head callback */
    bool             leased;        /* the body goes to the session */
    bool             verified;      /* checksum matched: commit is wanted */
    bool             counted;       /* in the uploads gauge */
    bool             expect_continue;
    char             id[TUS_ID_LEN + 1];
    enum tus_concat  concat;        /* Upload-Concat of a creation */
    size_t           nparts;        /* a final's partials, in order */
    char             parts[TUS_PARTS_MAX][TUS_ID_LEN + 1];
    bool             has_sha;       /* a final's X-Content-SHA256 & co */
    uint8_t          sha[32];
    int              fail_status;   /* a final being dropped: the answer */
    uint64_t         offset;        /* where the body goes */
    int64_t          body_len;      /* Content-Length, -1 chunked */
    uint64_t         length;        /* Upload-Length, or SIZE_UNKNOWN */
    uint64_t         received, next_checkpoint, discarded;
    const EVP_MD    *md;            /* Upload-Checksum, or NULL */
    EVP_MD_CTX      *mdctx;
    unsigned char    want[EVP_MAX_MD_SIZE];
    time_t           started;
    char             err[256];
    struct manifest_header hdr;     /* creation: what the session binds */
    struct sync_job  job;           /* creation short of space: reclaim */
    struct store_retry retry;       /* uploads.maxretries */
    int              reclaimed;
};

/* tus.c: answers */
void tus_head_begin(struct conn *c, struct http_head *h, int status);
void tus_add_expires(struct conn *c, struct http_head *h,
                     int64_t last_active);
void tus_reply_error(struct conn *c, int status, bool unread,
                     const char *why);
/* tus.c: life cycle */
void tus_leave_gauge(struct tus *t);
void tus_free(struct tus *t);
/* Ends the request with an error; t is freed. Returns -1 for callers in
 * the parser's callbacks. */
int  tus_fail(struct tus *t, int status, bool unread, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A sess callback came back: is anyone still waiting for the answer? */
bool tus_still_wanted(struct tus *t);
void tus_resume(struct tus *t);
int  tus_after_head_call(struct tus *t, struct conn *c);
/* tus.c: shared steps */
int  tus_parse_body(struct tus *t, struct http_request *req,
                    const char **why);
void tus_session_key(const char *id, uint8_t key[MANIFEST_KEY_LEN]);
int  tus_lease_body(struct tus *t, uint64_t size, const char **why);
bool tus_expired(const struct tus *t, const struct shm_view *v);
bool tus_usable(struct tus *t, int rc, bool body_unread, struct shm_view *v);

/* tus_create.c: POST */
int  tus_create_target(struct tus *t, struct conn *c, struct http_request *req,
                       const char **why);
int  tus_check_auth(struct tus *t, const char *query, int64_t size,
                    const char **why);
bool tus_file_exists(struct tus *t);
int  tus_create_parse(struct tus *t, struct conn *c, struct http_request *req,
                      const char **why);
int  tus_create_begin(struct tus *t, struct conn *c);
/* tus_patch.c: PATCH */
int  tus_patch_parse(struct tus *t, struct http_request *req,
                     const char **why);
int  tus_patch_begin(struct tus *t, struct conn *c);
/* tus_concat.c: POST with Upload-Concat: final;... (partials are created
 * by tus_create.c and never published) */
int  tus_final_begin(struct tus *t, struct conn *c, struct http_request *req);
/* tus_finish.c: answers after the body, HEAD, DELETE */
void tus_finished(struct sess *s, int rc, void *arg);
void tus_status_opened(struct sess *s, int rc, void *arg);
int  tus_terminate(struct tus *t);

#endif
