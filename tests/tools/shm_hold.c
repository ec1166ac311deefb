/* shm_hold: a process that takes entry locks of a running daemon's session
 * table and stops itself while holding them, for ever: a worker that hung
 * or was stopped (SIGSTOP, a debugger) inside a critical section, as the
 * master sees it. For tests/integration/test_shm.py.
 *
 *   shm-hold NAME N     lock up to N entries in use, print "held K", stop
 *
 * SIGCONT makes it stop again; SIGKILL is the way out, after which the next
 * locker of each entry gets EOWNERDEAD and repairs it. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shm/lock.h"
#include "shm/table.h"
#include "shm/table_internal.h"

int
main(int argc, char **argv)
{
    struct shm_table *t;
    char              err[256];
    int               want, held = 0;
    pid_t             holder;

    if (argc != 3 || (want = atoi(argv[2])) <= 0) {
        fprintf(stderr, "usage: shm-hold NAME N\n");
        return 2;
    }
    if (shm_table_attach(argv[1], 0, &t, err, sizeof(err)) != SHM_TABLE_OK) {
        fprintf(stderr, "shm-hold: %s\n", err);
        return 1;
    }
    for (uint32_t i = 0; i < t->h->capacity && held < want; i++) {
        struct entry *e = &t->e[i];
        if (!(atomic_load(&e->tag) & TAG_USED))
            continue;
        /* After a repair report the lock is ours too; kept unrepaired,
         * it is the next locker's to repair once we are killed. */
        int rc = shm_lock(&e->lock, 5000, &holder);
        if (rc == SHM_LOCKED || rc == SHM_LOCKED_AFTER_REPAIR)
            held++;
    }
    printf("held %d\n", held);
    fflush(stdout);
    for (;;) {
        raise(SIGSTOP);
        pause();
    }
}
