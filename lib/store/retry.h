/* retry: which failed storage operations are worth another attempt, and
 * how many (uploads.maxretries), decided in one place.
 *
 *   EINTR          interrupted, nothing failed: again at once, not counted
 *   EAGAIN         the kernel lacks something for a moment: again at once,
 *                  counted
 *   ENOSPC, EDQUOT again only after the caller reclaimed space of our own
 *                  (expired upload sessions), counted; if reclaiming freed
 *                  nothing, another attempt cannot succeed and the caller
 *                  gives up (507)
 *   anything else  final
 *
 * Never ask about a failed fsync or fdatasync: after one, the kernel may
 * have dropped the dirty pages and marked them clean, so a second call
 * "succeeds" over lost data (fsyncgate, PostgreSQL 2018). Only operations
 * that either changed nothing or whose partial result the caller removed
 * entirely (a session created anew from nothing) are retried. */
#ifndef LIB_STORE_RETRY_H
#define LIB_STORE_RETRY_H

enum store_retry_how {
    STORE_RETRY_NO = 0,         /* final: answer the error */
    STORE_RETRY_NOW,            /* try again at once */
    STORE_RETRY_RECLAIM,        /* free space, then try again */
};

struct store_retry {
    int max;                    /* uploads.maxretries */
    int used;                   /* counted retries so far */
};

/* What to do about errno value err after a failed attempt; counts the
 * retry it allows. */
enum store_retry_how store_retry(struct store_retry *r, int err);

#endif
