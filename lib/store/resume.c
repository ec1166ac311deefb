/* resume.c: one session's fate from its manifest (resume.h). The rules
 * were master/recover.c's; they live here so that a cluster takeover
 * rebuilds a session exactly as a restart does. */
#define _GNU_SOURCE
#include "lib/store/resume.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int
removed(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN], struct resume *out,
        const char *why, char *err, size_t errlen)
{
    out->verdict = RESUME_REMOVED;
    out->why = why;
    if (manifest_remove(staging_fd, key, err, errlen) < 0)
        return -1;
    err[0] = '\0';
    return 0;
}

int
resume_session(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
               const struct resume_limits *lim, struct resume *out,
               char *err, size_t errlen)
{
    struct manifest *mf;
    struct manifest_state *st = &out->st;

    err[0] = '\0';
    out->why = "";
    out->expires = 0;
    if (manifest_open(staging_fd, key, &mf, err, errlen) < 0)
        return removed(staging_fd, key, out, "no manifest", err, errlen);
    int rc = manifest_load(mf, lim->flags, st, err, errlen);
    manifest_close(mf);
    if (rc < 0 && errno == ENODATA)
        return removed(staging_fd, key, out, "never acknowledged", err,
                       errlen);
    if (rc < 0) {
        out->verdict = RESUME_CORRUPT;     /* err says what is wrong */
        return 0;
    }
    /* A tus final and its partials stay DONE a while after publication
     * (worker/session_concat.c): a client whose 201 was lost repeats the
     * final. */
    bool keep_done = st->complete
                     && st->header.concat != MANIFEST_CONCAT_NONE
                     && st->mtime + lim->done_keep > lim->now;
    if ((st->complete || st->aborted) && !keep_done)
        return removed(staging_fd, key, out,
                       st->complete ? "complete" : "aborted", err, errlen);
    if (st->mtime + lim->idle_timeout < lim->now)
        return removed(staging_fd, key, out, "expired", err, errlen);
    if (st->bad_chunks && !keep_done)
        snprintf(err, errlen, "%u chunk record(s) did not match the data "
                 "and were dropped", st->bad_chunks);
    out->verdict = keep_done ? RESUME_DONE : RESUME_ACTIVE;
    if (keep_done)
        out->expires = st->mtime + lim->done_keep;
    return 0;
}
