/* retry.c: the one policy for transient storage errors (see retry.h). */
#include "lib/store/retry.h"

#include <errno.h>

enum store_retry_how
store_retry(struct store_retry *r, int err)
{
    enum store_retry_how how;

    switch (err) {
    case EINTR:
        return STORE_RETRY_NOW;
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        how = STORE_RETRY_NOW;
        break;
    case ENOSPC:
    case EDQUOT:
        how = STORE_RETRY_RECLAIM;
        break;
    default:
        return STORE_RETRY_NO;
    }
    if (r->used >= r->max)
        return STORE_RETRY_NO;
    r->used++;
    return how;
}
