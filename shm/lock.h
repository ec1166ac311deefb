/* lock: robust, process-shared mutexes for data in shared memory.
 *
 * The only place that calls pthread_mutex_*. A holder that dies (SIGKILL,
 * _exit, crash) does not leave the lock stuck: the next locker gets
 * SHM_LOCKED_AFTER_REPAIR and must repair what the lock protects, then call
 * shm_lock_consistent before shm_unlock. Unlocking without it poisons the
 * mutex for good (SHM_LOCK_BROKEN) until shm_mutex_reset. A holder that is
 * alive but stuck (SIGSTOP, a hang) shows up as SHM_LOCK_TIMEOUT naming its
 * pid, for the master to kill. Rules for holders: docs/shm.md. */
#ifndef SHM_LOCK_H
#define SHM_LOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

struct shm_mutex {
    pthread_mutex_t mu;
    _Atomic int32_t owner;              /* holder's pid, 0 when free */
    int32_t         pad_;
};

enum shm_lock_rc {
    SHM_LOCKED              = 0,
    SHM_LOCKED_AFTER_REPAIR = 1,        /* previous holder died holding it */
    SHM_LOCK_TIMEOUT        = -1,       /* held past the timeout by *pid_r */
    SHM_LOCK_BROKEN         = -2,       /* ENOTRECOVERABLE: reset needed */
    SHM_LOCK_ERROR          = -3        /* errno set (EDEADLK: own lock) */
};

/* m must be in memory shared by every user (MAP_SHARED). */
int  shm_mutex_init(struct shm_mutex *m, char *err, size_t errlen);
/* Destroy and re-init. Only when no other process can touch m (master,
 * workers stopped): the way back from SHM_LOCK_BROKEN. */
int  shm_mutex_reset(struct shm_mutex *m, char *err, size_t errlen);

/* timeout_ms < 0 waits forever, 0 only tries. *pid_r (may be NULL): on
 * TIMEOUT the holder, on LOCKED_AFTER_REPAIR the dead holder (0 if it died
 * before recording itself). */
int  shm_lock(struct shm_mutex *m, int timeout_ms, pid_t *pid_r);
/* After repair, before unlock. 0, or -1 with errno. */
int  shm_lock_consistent(struct shm_mutex *m);
void shm_unlock(struct shm_mutex *m);
/* Current holder's pid, 0 if none: diagnostics only, may be stale. */
pid_t shm_lock_owner(const struct shm_mutex *m);

#endif
