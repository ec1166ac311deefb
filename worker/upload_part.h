/* upload_part: what the parts of the upload handler share (upload.c,
 * upload_head.c, upload_place.c, upload_status.c) and nothing else
 * includes: the state of one PUT and the calls between the parts. */
#ifndef WORKER_UPLOAD_PART_H
#define WORKER_UPLOAD_PART_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lib/auth/auth.h"
#include "lib/store/path.h"
#include "lib/store/publish.h"
#include "lib/store/retry.h"
#include "lib/util/digest.h"
#include "worker/commit.h"
#include "worker/syncpool.h"
#include "worker/upload_parse.h"

struct conn;
struct http_request;
struct sess;
struct worker;

#define CHECKPOINT_BYTES (8ULL * 1024 * 1024)

enum upload_mode { MODE_STAGING, MODE_SESSION, MODE_DISCARD };

/* Checkpoints of a one-shot staging file sync a dup of its fd, which shares
 * the open file description: once one fails, the kernel has reported the
 * write-back error and a later fsync may say 0 for pages it dropped. So
 * their outcome is kept here (shared by the upload and its in-flight
 * checkpoints, freed by the last), and publication refuses the file. */
struct ckpt_state {
    int              refs;          /* loop thread only */
    _Atomic int      inflight;      /* checkpoints not yet synced */
    _Atomic int      failed;
};

struct upload {
    struct sync_job  job;
    struct commit_member member;    /* storage.sync = "batch" */
    struct conn     *c;             /* NULL once the connection is gone */
    struct worker   *w;
    enum upload_mode mode;
    int              fd;            /* MODE_STAGING */
    char             staging[STORE_STAGING_NAME_LEN];
    struct sess     *sess;          /* MODE_SESSION */
    uint64_t         skip;          /* body bytes already held: dropped */
    uint64_t         next_checkpoint;
    uint64_t         range_a, range_b;   /* [a, b) of the file */
    bool             chunked_proto;
    char             rel[STORE_PATH_MAX + 1];
    size_t           rel_len;
    uint64_t         received;
    int64_t          expected;      /* Content-Length, -1 when chunked */
    int64_t          total;         /* file size the MAC binds */
    bool             recheck_mac;
    bool             job_pending;
    struct ckpt_state *ckpt;        /* MODE_STAGING, once checkpointed */
    bool             deferred;      /* a plain PUT in a staging file that
                                       becomes a session if it must */
    bool             promoting;     /* upload_promote was called */
    bool             write_error;   /* nothing of it is worth keeping */
    uint32_t         body_crc;      /* deferred: CRC-32C of [0, received) */
    struct writeback *wb;           /* once a stretch of the body is in */
    bool             wb_tried;      /* writeback_new was called */
    bool             opening;       /* sess_open in flight */
    bool             complete_already;   /* published before this request */
    bool             expect_continue;    /* 100 Continue still owed */
    uint64_t         dup_len;       /* held bytes this request re-sent */
    uint32_t         dup_crc;       /* their CRC-32C, checked at the end */
    bool             dup_mismatch;
    bool             counted;       /* in the uploads-in-progress gauge */
    time_t           started;
    enum auth_variant variant;
    char             query[AUTH_QUERY_MAX + 1];
    char             content_type[256];
    bool             has_ctype;     /* sent, maybe empty: v2 binds it as is */
    char             session_id[UPLOAD_SESSION_ID_MAX + 1];
    bool             has_sha;       /* the client announced the SHA-256 */
    uint8_t          sha[32];
    struct digest_sha256 body_sha;  /* has_sha, one-shot: of what arrived */
    int              result, result_errno;
    struct store_retry retry;      /* uploads.maxretries, per request */
    char             err[256];
};

/* upload.c */
void upload_uncount(struct upload *up);
void upload_free(struct upload *up, bool discard);
void upload_respond_status(struct conn *c, struct upload *up, int status);
/* Detach from the connection, answer `status` if it is still there, free. */
void upload_finish(struct upload *up, int status);

/* upload_head.c: 0 or a status with *why */
int  upload_check_auth(struct upload *up, int64_t size,
                       struct auth_result *res);
int  upload_auth_status(enum auth_status s);
int  upload_parse_common(struct conn *c, struct http_request *req,
                         struct upload *up, const char **why);
int  upload_parse_range(struct conn *c, struct http_request *req,
                        struct upload *up, const char **why);
int  upload_check_signature(struct upload *up, const char **why);
/* Something at the final path? *size_r: its size, -1 if not servable. */
bool upload_final_exists(struct upload *up, int64_t *size_r);

/* upload_place.c */
int  upload_place(struct conn *c, struct upload *up, const char **why,
                  bool *async);
bool upload_start_reclaim(struct conn *c, struct upload *up);
int  upload_send_continue(struct conn *c, struct upload *up);
bool upload_published_meanwhile(struct upload *up);
/* A deferred plain PUT was cut: make its staging file a session's data
 * (sess_adopt) and commit what arrived, then free the upload. The caller
 * has let go of the connection. */
void upload_promote(struct upload *up);
/* Whether a deferred upload may become a session now. */
bool upload_may_promote(const struct upload *up);

#endif
