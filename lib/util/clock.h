/* clock: wall-clock seconds from the same clock everyone else reads.
 *
 * time(2) is served from the kernel's coarse clock, which lags
 * CLOCK_REALTIME by up to a tick (a few ms) just after a second boundary.
 * A timestamp a client or monitoring compares with its own clock
 * (metrics, expiry headers) must not be a second behind, so such
 * timestamps read CLOCK_REALTIME. */
#ifndef LIB_UTIL_CLOCK_H
#define LIB_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t
clock_wall_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

#endif
