/* lock.c: the robust-mutex wrapper.
 *
 * PTHREAD_PROCESS_SHARED makes glibc use shared futex operations (keyed by
 * the backing object, so processes may map at different addresses);
 * without it a waiter in another process is never woken. PTHREAD_MUTEX_ROBUST
 * puts the held mutex on the thread's robust list, which the kernel walks
 * when the thread dies, for SIGKILL and _exit alike. Both are enums on
 * glibc: never guard them with #ifdef. Measured behaviour on glibc 2.36 is
 * in design-notes 1.5 and pinned by tests/unit/test_lock.c. */
#define _GNU_SOURCE
#include "shm/lock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


static int
lock_fail(char *err, size_t errlen, const char *call, int rc)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: %s", call, strerror(rc));
    errno = rc;
    return -1;
}


int
shm_mutex_init(struct shm_mutex *m, char *err, size_t errlen)
{
    pthread_mutexattr_t a;
    int                 rc;

    /* Zeroed first: some libcs read fields of the target during init. */
    memset(m, 0, sizeof(*m));
    if ((rc = pthread_mutexattr_init(&a)) != 0)
        return lock_fail(err, errlen, "pthread_mutexattr_init", rc);
    if ((rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) != 0
        || (rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) != 0
        || (rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK)) != 0
        || (rc = pthread_mutex_init(&m->mu, &a)) != 0)
    {
        pthread_mutexattr_destroy(&a);
        return lock_fail(err, errlen, "pthread_mutex_init (robust, pshared)",
                         rc);
    }
    pthread_mutexattr_destroy(&a);
    atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
    return 0;
}


int
shm_mutex_reset(struct shm_mutex *m, char *err, size_t errlen)
{
    /* EBUSY or garbage state is expected here: that is why we reset. */
    (void)pthread_mutex_destroy(&m->mu);
    return shm_mutex_init(m, err, errlen);
}


static int
acquire(struct shm_mutex *m, int timeout_ms)
{
    struct timespec ts;

    if (timeout_ms < 0)
        return pthread_mutex_lock(&m->mu);
    if (timeout_ms == 0)
        return pthread_mutex_trylock(&m->mu);
    /* Monotonic: a wall-clock step must not stretch or cut the wait. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_mutex_clocklock(&m->mu, CLOCK_MONOTONIC, &ts);
}


int
shm_lock(struct shm_mutex *m, int timeout_ms, pid_t *pid_r)
{
    /* Asked before locking: no system call inside the critical section. */
    pid_t self = getpid();
    pid_t prev;
    int   rc = acquire(m, timeout_ms);

    switch (rc) {
    case 0:
        atomic_store_explicit(&m->owner, self, memory_order_relaxed);
        return SHM_LOCKED;
    case EOWNERDEAD:
        prev = atomic_load_explicit(&m->owner, memory_order_relaxed);
        atomic_store_explicit(&m->owner, self, memory_order_relaxed);
        if (pid_r != NULL)
            *pid_r = prev;
        return SHM_LOCKED_AFTER_REPAIR;
    case ETIMEDOUT:
    case EBUSY:
        if (pid_r != NULL)
            *pid_r = atomic_load_explicit(&m->owner, memory_order_relaxed);
        return SHM_LOCK_TIMEOUT;
    case ENOTRECOVERABLE:
        return SHM_LOCK_BROKEN;
    default:
        errno = rc;
        return SHM_LOCK_ERROR;
    }
}


int
shm_lock_consistent(struct shm_mutex *m)
{
    int rc = pthread_mutex_consistent(&m->mu);

    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}


void
shm_unlock(struct shm_mutex *m)
{
    atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
    (void)pthread_mutex_unlock(&m->mu);
}


pid_t
shm_lock_owner(const struct shm_mutex *m)
{
    return atomic_load_explicit(&((struct shm_mutex *)m)->owner,
                                memory_order_relaxed);
}
