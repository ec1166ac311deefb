/* test_lock: robust process-shared mutexes behave as docs/shm.md promises.
 *
 * These run real processes against a real MAP_SHARED mapping: the point is
 * to catch a libc or build that silently loses robustness (an #ifdef'd
 * PTHREAD_MUTEX_ROBUST, a musl-style ENOTRECOVERABLE instead of EOWNERDEAD,
 * a missing PTHREAD_PROCESS_SHARED that hangs the waiter). */
#define _GNU_SOURCE
#include "tests/unit/unit.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/lock.h"

/* A lock and the data it protects, with an intent flag to repair from. */
struct guarded {
    struct shm_mutex lock;
    int              intent;        /* 1 while `a` and `b` may disagree */
    long             a, b;          /* invariant: a == b */
};

enum holder_end { HOLD_PAUSE, HOLD_EXIT, HOLD_STOP };


static struct guarded *
map_guarded(void)
{
    struct guarded *g = mmap(NULL, sizeof(*g), PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char            err[128];

    CU_ASSERT_FATAL(g != MAP_FAILED);
    CU_ASSERT_FATAL(shm_mutex_init(&g->lock, err, sizeof(err)) == 0);
    return g;
}


/* Forks a child that takes the lock, starts a change (intent set, a
 * updated, b not), tells the parent, then pauses, exits or stops. */
static pid_t
spawn_holder(struct guarded *g, enum holder_end how)
{
    int   p[2];
    char  c;
    pid_t pid;

    CU_ASSERT_FATAL(pipe(p) == 0);
    pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        if (shm_lock(&g->lock, -1, NULL) != SHM_LOCKED)
            _exit(3);
        g->intent = 1;
        g->a++;
        if (write(p[1], "x", 1) != 1)
            _exit(4);
        if (how == HOLD_EXIT)
            _exit(0);
        if (how == HOLD_STOP)
            raise(SIGSTOP);
        for (;;)
            pause();
    }
    close(p[1]);
    CU_ASSERT_FATAL(read(p[0], &c, 1) == 1);
    close(p[0]);
    return pid;
}


static void
reap(pid_t pid)
{
    int st;

    CU_ASSERT_FATAL(waitpid(pid, &st, 0) == pid);
}


/* What every locker must do after SHM_LOCKED_AFTER_REPAIR. */
static void
repair(struct guarded *g)
{
    if (g->intent) {
        g->b = g->a;
        g->intent = 0;
    }
}


static void
expect_repair_then_plain(struct guarded *g, pid_t dead)
{
    pid_t pid = 0;

    CU_ASSERT_EQUAL(shm_lock(&g->lock, 1000, &pid), SHM_LOCKED_AFTER_REPAIR);
    CU_ASSERT_EQUAL(pid, dead);
    CU_ASSERT_EQUAL(g->intent, 1);
    repair(g);
    CU_ASSERT_EQUAL(shm_lock_consistent(&g->lock), 0);
    shm_unlock(&g->lock);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(shm_lock(&g->lock, 1000, &pid), SHM_LOCKED);
        CU_ASSERT_EQUAL(shm_lock_owner(&g->lock), getpid());
        CU_ASSERT_EQUAL(g->a, g->b);
        shm_unlock(&g->lock);
    }
    CU_ASSERT_EQUAL(shm_lock_owner(&g->lock), 0);
}


static void
t_plain(void)
{
    struct guarded *g = map_guarded();
    pid_t           pid = -1;

    CU_ASSERT_EQUAL(shm_lock(&g->lock, 0, &pid), SHM_LOCKED);
    CU_ASSERT_EQUAL(shm_lock_owner(&g->lock), getpid());
    /* Error-checking: relocking our own lock is refused, not a hang. */
    CU_ASSERT_EQUAL(shm_lock(&g->lock, -1, &pid), SHM_LOCK_ERROR);
    CU_ASSERT_EQUAL(errno, EDEADLK);
    shm_unlock(&g->lock);
    CU_ASSERT_EQUAL(shm_lock_owner(&g->lock), 0);
    munmap(g, sizeof(*g));
}


static void
t_sigkill_holder(void)
{
    struct guarded *g = map_guarded();
    pid_t           child = spawn_holder(g, HOLD_PAUSE);

    CU_ASSERT_EQUAL(shm_lock_owner(&g->lock), child);
    kill(child, SIGKILL);
    reap(child);
    expect_repair_then_plain(g, child);
    CU_ASSERT_EQUAL(g->a, 1);
    munmap(g, sizeof(*g));
}


static void
t_exit_holder(void)
{
    struct guarded *g = map_guarded();
    pid_t           child = spawn_holder(g, HOLD_EXIT);

    reap(child);
    expect_repair_then_plain(g, child);
    munmap(g, sizeof(*g));
}


static long
ms_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000
         + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}


static void
t_stopped_holder(void)
{
    struct guarded *g = map_guarded();
    pid_t           child = spawn_holder(g, HOLD_STOP), pid = 0;
    struct timespec t0;
    int             st;

    CU_ASSERT_FATAL(waitpid(child, &st, WUNTRACED) == child);
    CU_ASSERT(WIFSTOPPED(st));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CU_ASSERT_EQUAL(shm_lock(&g->lock, 200, &pid), SHM_LOCK_TIMEOUT);
    CU_ASSERT(ms_since(&t0) >= 190);
    CU_ASSERT_EQUAL(pid, child);
    /* What the master does with the pid: the lock then comes back. */
    kill(child, SIGKILL);
    reap(child);
    expect_repair_then_plain(g, child);
    munmap(g, sizeof(*g));
}


/* A second process already blocked in the lock must be woken by the
 * holder's death (this is what PTHREAD_PROCESS_SHARED buys). */
static void
t_blocked_waiter_wakes(void)
{
    struct guarded *g = map_guarded();
    pid_t           holder = spawn_holder(g, HOLD_PAUSE), waiter;
    int             st;

    waiter = fork();
    CU_ASSERT_FATAL(waiter >= 0);
    if (waiter == 0) {
        pid_t dead = 0;
        int   rc = shm_lock(&g->lock, 5000, &dead);
        if (rc != SHM_LOCKED_AFTER_REPAIR || dead != holder)
            _exit(10 + rc);
        repair(g);
        _exit(shm_lock_consistent(&g->lock) == 0 ? 0 : 9);
    }
    usleep(100 * 1000);
    kill(holder, SIGKILL);
    reap(holder);
    CU_ASSERT_FATAL(waitpid(waiter, &st, 0) == waiter);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* The waiter exited holding the lock after repairing it. */
    CU_ASSERT_EQUAL(shm_lock(&g->lock, 1000, NULL), SHM_LOCKED_AFTER_REPAIR);
    CU_ASSERT_EQUAL(g->intent, 0);
    CU_ASSERT_EQUAL(shm_lock_consistent(&g->lock), 0);
    shm_unlock(&g->lock);
    munmap(g, sizeof(*g));
}


/* Skipping consistent poisons the mutex until a reset. */
static void
t_unrepaired_poisons(void)
{
    struct guarded *g = map_guarded();
    pid_t           child = spawn_holder(g, HOLD_EXIT);
    char            err[128];

    reap(child);
    CU_ASSERT_EQUAL(shm_lock(&g->lock, 1000, NULL), SHM_LOCKED_AFTER_REPAIR);
    shm_unlock(&g->lock);
    CU_ASSERT_EQUAL(shm_lock(&g->lock, 100, NULL), SHM_LOCK_BROKEN);
    CU_ASSERT_EQUAL(shm_lock(&g->lock, 0, NULL), SHM_LOCK_BROKEN);
    CU_ASSERT_EQUAL(shm_mutex_reset(&g->lock, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(shm_lock(&g->lock, 100, NULL), SHM_LOCKED);
    shm_unlock(&g->lock);
    munmap(g, sizeof(*g));
}


static CU_TestInfo lock_tests[] = {
    { "plain lock, relock refused", t_plain },
    { "SIGKILLed holder: repair, then plain", t_sigkill_holder },
    { "_exit(0) holder: repair, then plain", t_exit_holder },
    { "SIGSTOPped holder: timeout names pid", t_stopped_holder },
    { "blocked waiter wakes on holder death", t_blocked_waiter_wakes },
    { "no consistent: broken until reset", t_unrepaired_poisons },
    CU_TEST_INFO_NULL
};

UNIT_SUITE("lock", NULL, NULL, lock_tests);
