/* resume: what one session's manifest says should become of it, the same
 * rules for a restart (master/recover.c, every session before workers
 * start) and for a cluster node taking a session over from a node that
 * died (worker/session_owner.c, docs/cluster.md).
 *
 * resume_session replays the manifest (cutting a torn tail when asked),
 * removes a session that must not come back (never acknowledged, finished,
 * aborted, idle past the timeout) and otherwise says what to put back in
 * the session table. It blocks on the filesystem: never on the event loop.
 * The caller must own the session (no other process appends to it). */
#ifndef LIB_STORE_RESUME_H
#define LIB_STORE_RESUME_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/store/manifest.h"

enum resume_verdict {
    RESUME_ACTIVE,      /* resumable: restore it as ACTIVE */
    RESUME_DONE,        /* a published tus final (or partial) kept a while
                           for a repeated request: restore it as DONE */
    RESUME_REMOVED,     /* gone from disk now (or was): why says why */
    RESUME_CORRUPT      /* beyond a torn tail: left in place for a human */
};

struct resume_limits {
    int64_t now;
    int64_t idle_timeout;       /* uploads.sessiontimeout */
    int64_t done_keep;          /* how long a published final lingers */
    int     flags;              /* MANIFEST_TRUNCATE [| MANIFEST_VERIFY] */
};

struct resume {
    enum resume_verdict    verdict;
    const char            *why;         /* RESUME_REMOVED: a short reason */
    struct manifest_state  st;          /* RESUME_ACTIVE / RESUME_DONE */
    int64_t                expires;     /* RESUME_DONE: until when */
};

/* 0 with *out filled (err holds a warning to log, or ""), or -1 with err
 * when the session could not even be removed. */
int resume_session(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
                   const struct resume_limits *lim, struct resume *out,
                   char *err, size_t errlen);

#endif
