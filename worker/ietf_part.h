/* ietf_part: what the parts of the IETF draft's handler share (ietf.c,
 * ietf_create.c, ietf_append.c, ietf_finish.c) and nothing else includes:
 * the state of one request and the calls between the parts. */
#ifndef WORKER_IETF_PART_H
#define WORKER_IETF_PART_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lib/store/manifest.h"
#include "lib/store/retry.h"
#include "worker/ietf_parse.h"
#include "worker/syncpool.h"

struct conn;
struct http_head;
struct http_request;
struct sess;
struct shm_view;
struct worker;

#define IETF_CHECKPOINT_BYTES  (8ULL * 1024 * 1024)
#define IETF_DISCARD_MAX       (64 * 1024)     /* body of a HEAD or DELETE */

enum ietf_op { IETF_CREATE, IETF_HEAD, IETF_APPEND, IETF_DELETE };

struct ietf {
    struct conn     *c;             /* NULL once the connection is gone */
    struct worker   *w;
    enum ietf_op     op;
    int              version;       /* Upload-Draft-Interop-Version */
    struct sess     *sess;
    bool             pending;       /* a sess callback will come */
    bool             in_head;       /* inside the parser's head callback */
    bool             leased;        /* the body goes to the session */
    bool             counted;       /* in the uploads gauge */
    bool             expect_continue;
    bool             complete;      /* the request's Upload-Complete */
    enum ietf_problem problem;      /* what a parse refusal answers */
    char             id[IETF_ID_LEN + 1];
    uint64_t         offset;        /* where the body goes */
    int64_t          body_len;      /* Content-Length, -1 chunked */
    uint64_t         length;        /* the upload's length, or UNKNOWN */
    uint64_t         received, next_checkpoint, discarded;
    time_t           started;
    char             err[256];
    struct manifest_header hdr;     /* creation: what the session binds */
    struct sync_job  job;           /* creation short of space: reclaim */
    struct store_retry retry;       /* uploads.maxretries */
    int              reclaimed;
};

/* ietf.c: answers */
void ietf_head_begin(struct ietf *t, struct conn *c, struct http_head *h,
                     int status);
void ietf_add_limit(struct ietf *t, struct http_head *h, int64_t last_active);
void ietf_add_state(struct ietf *t, struct http_head *h,
                    const struct shm_view *v);
void ietf_location(struct ietf *t, char *buf, size_t len);
/* ietf.c: life cycle */
void ietf_leave_gauge(struct ietf *t);
void ietf_free(struct ietf *t);
/* Ends the request with an error; t is freed. Returns -1 for callers in
 * the parser's callbacks. A problem the request's version defines is
 * answered as its JSON document (offsets for a mismatch), else as text. */
int  ietf_fail(struct ietf *t, int status, bool unread, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int  ietf_fail_problem(struct ietf *t, int status, bool unread,
                       enum ietf_problem p, uint64_t expected,
                       const char *why);
bool ietf_still_wanted(struct ietf *t);
/* Go on reading the body (after 100 Continue, then `interim`, when set). */
void ietf_resume(struct ietf *t, struct http_head *interim);
int  ietf_after_head_call(struct ietf *t, struct conn *c);
/* ietf.c: shared steps */
int  ietf_parse_body(struct ietf *t, struct http_request *req,
                     const char **why);
void ietf_session_key(const char *id, uint8_t key[MANIFEST_KEY_LEN]);
int  ietf_lease_body(struct ietf *t, uint64_t size, const char **why);
bool ietf_expired(const struct ietf *t, const struct shm_view *v);
bool ietf_usable(struct ietf *t, int rc, bool body_unread,
                 struct shm_view *v);
uint64_t ietf_offset(const struct shm_view *v);

/* ietf_create.c: creation */
int  ietf_create_parse(struct ietf *t, struct conn *c,
                       struct http_request *req, const char **why);
int  ietf_create_begin(struct ietf *t, struct conn *c);
/* ietf_append.c: PATCH */
int  ietf_append_parse(struct ietf *t, struct http_request *req,
                       const char **why);
int  ietf_append_begin(struct ietf *t, struct conn *c);
/* ietf_finish.c: answers after the body, HEAD, DELETE */
void ietf_finished(struct sess *s, int rc, void *arg);
void ietf_status_opened(struct sess *s, int rc, void *arg);
int  ietf_cancel(struct ietf *t);

#endif
