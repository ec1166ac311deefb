/* netstate.c: the seqlock around the last change's text. */
#include "shm/netstate.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

void
netstate_set_last_change(struct netmon_shared *sh, const char *what)
{
    uint32_t seq = atomic_load_explicit(&sh->last_seq, memory_order_relaxed);

    atomic_store_explicit(&sh->last_seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    snprintf(sh->last_change, sizeof(sh->last_change), "%s", what);
    atomic_store_explicit(&sh->last_seq, seq + 2, memory_order_release);
}

void
netstate_last_change(const struct netmon_shared *sh, char *buf, size_t len)
{
    char tmp[sizeof(sh->last_change)] = "";

    if (len == 0)
        return;
    for (int tries = 0; tries < 1000; tries++) {
        uint32_t s1 = atomic_load_explicit(&sh->last_seq,
                                           memory_order_acquire);
        if (s1 & 1)
            continue;
        memcpy(tmp, sh->last_change, sizeof(tmp));
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&sh->last_seq, memory_order_relaxed) == s1)
            break;
    }
    /* After 1000 torn reads the writer is hammering; a garbled log string
     * is acceptable, a missing terminator is not. */
    tmp[sizeof(tmp) - 1] = '\0';
    snprintf(buf, len, "%s", tmp);
}
