/* test_owner: cluster ownership of a session (lib/store/owner.h) on a local
 * directory: one node's processes share it, another node is kept out, a
 * dead holder's lock goes with it, and a holder whose lock moved on notices
 * before it would acknowledge anything. */
#define _GNU_SOURCE
#include "tests/unit/unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/store/owner.h"

static char *dir;
static int   staging;
static uint8_t key[MANIFEST_KEY_LEN];

static int
setup(void)
{
    dir = unit_mkdtemp();
    staging = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    manifest_key("id", 2, "a/b.txt", 7, key);
    return staging < 0;
}

static int
teardown(void)
{
    close(staging);
    unit_rmtree(dir);
    free(dir);
    return 0;
}

static const char *
owner_path(void)
{
    static char p[256];
    char hex[MANIFEST_KEY_HEXLEN + 1];
    manifest_key_hex(key, hex);
    snprintf(p, sizeof(p), "%.2s/%s.owner", hex, hex);
    return p;
}

static void
t_node_ids(void)
{
    CU_ASSERT_EQUAL(owner_node_id_valid("files-a.example_1"), 0);
    CU_ASSERT_EQUAL(owner_node_id_valid(""), -1);
    CU_ASSERT_EQUAL(owner_node_id_valid("a b"), -1);
    CU_ASSERT_EQUAL(owner_node_id_valid("a/b"), -1);
    char longid[OWNER_NODE_ID_MAX + 2];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    CU_ASSERT_EQUAL(owner_node_id_valid(longid), -1);
    longid[OWNER_NODE_ID_MAX] = '\0';
    CU_ASSERT_EQUAL(owner_node_id_valid(longid), 0);
    CU_ASSERT_EQUAL(owner_slot("a"), owner_slot("a"));
    CU_ASSERT_NOT_EQUAL(owner_slot("a"), owner_slot("b"));
    CU_ASSERT(owner_slot("a") >= 1);
}

/* One node's processes share; another node is refused, naming the owner;
 * after the last holder of the first node lets go, the other gets it. */
static void
t_nodes_exclude(void)
{
    struct owner *a1, *a2, *b;
    char err[256];

    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-a", &a1, err,
                                  sizeof(err)), OWNER_NEW);
    owner_ready(a1);
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-a", &a2, err,
                                  sizeof(err)), OWNER_JOINED);
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-b", &b, err,
                                  sizeof(err)), OWNER_OTHER);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "node-a"));
    owner_release(a1);
    /* a2 still holds node-a's slot */
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-b", &b, err,
                                  sizeof(err)), OWNER_OTHER);
    CU_ASSERT_EQUAL(owner_check(a2, err, sizeof(err)), 0);
    owner_release(a2);
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-b", &b, err,
                                  sizeof(err)), OWNER_NEW);
    owner_ready(b);
    CU_ASSERT_EQUAL(owner_check(b, err, sizeof(err)), 0);
    owner_remove(b);
    CU_ASSERT_EQUAL(faccessat(staging, owner_path(), F_OK, 0), -1);
}

/* While a new owner rebuilds (gate held), nobody else gets in. */
static void
t_gate_held_while_rebuilding(void)
{
    struct owner *a, *b;
    char err[256];
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-a", &a, err,
                                  sizeof(err)), OWNER_NEW);
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-b", &b, err,
                                  sizeof(err)), OWNER_OTHER);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "taken over"));
    owner_ready(a);
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-b", &b, err,
                                  sizeof(err)), OWNER_OTHER);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "node-a"));
    owner_remove(a);
}

/* A holder killed with -9 loses its lock with its process. */
static void
t_dead_holder_releases(void)
{
    int p[2];
    char c, err[256];
    struct owner *a;
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct owner *o;
        char e[256];
        if (owner_acquire(staging, key, "node-b", &o, e, sizeof(e))
            != OWNER_NEW)
            _exit(1);
        owner_ready(o);
        if (write(p[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    CU_ASSERT_EQUAL(read(p[0], &c, 1), 1);
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-a", &a, err,
                                  sizeof(err)), OWNER_OTHER);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-a", &a, err,
                                  sizeof(err)), OWNER_NEW);
    owner_ready(a);
    owner_remove(a);
    close(p[0]);
    close(p[1]);
}

/* A holder whose lock was dropped behind its back (a partition) finds
 * another node's token, or another inode at the name, and stops. */
static void
t_check_sees_takeover(void)
{
    struct owner *a;
    char err[256];
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-a", &a, err,
                                  sizeof(err)), OWNER_NEW);
    owner_ready(a);
    int fd = openat(staging, owner_path(), O_WRONLY | O_TRUNC);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, "0123456789abcdef node-b\n", 24), 24);
    close(fd);
    CU_ASSERT_EQUAL(owner_check(a, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, ESTALE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "node-b"));
    owner_release(a);

    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-a", &a, err,
                                  sizeof(err)), OWNER_NEW);
    owner_ready(a);
    CU_ASSERT_EQUAL(unlinkat(staging, owner_path(), 0), 0);
    fd = openat(staging, owner_path(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    CU_ASSERT_EQUAL(owner_check(a, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, ESTALE);
    owner_remove(a);            /* not ours any more: left in place */
    CU_ASSERT_EQUAL(faccessat(staging, owner_path(), F_OK, 0), 0);
    unlinkat(staging, owner_path(), 0);
}

/* An owner file unlinked between a contender's open and its lock (the
 * owner finished) is not taken: the contender locks the new name. */
static void
t_unlinked_file_not_taken(void)
{
    struct owner *a, *b;
    char err[256];
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-a", &a, err,
                                  sizeof(err)), OWNER_NEW);
    owner_ready(a);
    owner_remove(a);
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-b", &b, err,
                                  sizeof(err)), OWNER_NEW);
    owner_ready(b);
    CU_ASSERT_EQUAL(owner_check(b, err, sizeof(err)), 0);
    owner_remove(b);
}

struct contender {
    struct owner *o;
    int           rc;
    char          err[256];
};

static void *
contend(void *arg)
{
    struct contender *c = arg;
    c->rc = owner_acquire(staging, key, "node-a", &c->o, c->err,
                          sizeof(c->err));
    return NULL;
}

/* A sibling that opened the owner file while its new holder found nothing
 * to own (a status request) and removes it, gate held: the sibling, let
 * through the gate only after the unlink, must own the file now at the
 * name, not the unlinked one (issue 14: it came back as OWNER_JOINED on
 * the dead file, and its next check failed). If the sibling's open comes
 * after the unlink, it takes the new file anyway: this cannot misfire. */
static void
t_removed_under_a_waiting_sibling(void)
{
    struct owner *a;
    struct contender c = { .o = NULL, .rc = -9 };
    pthread_t th;
    char err[256];
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-a", &a, err,
                                  sizeof(err)), OWNER_NEW);
    CU_ASSERT_FATAL(pthread_create(&th, NULL, contend, &c) == 0);
    usleep(100 * 1000);           /* it opens the file, waits for the gate */
    owner_remove(a);              /* gate still held: nothing to own */
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(c.rc, OWNER_NEW);
    CU_ASSERT_FATAL(c.o != NULL);
    if (c.rc == OWNER_NEW)
        owner_ready(c.o);
    CU_ASSERT_EQUAL(owner_check(c.o, c.err, sizeof(c.err)), 0);
    CU_ASSERT_EQUAL(faccessat(staging, owner_path(), F_OK, 0), 0);
    owner_remove(c.o);
    CU_ASSERT_EQUAL(faccessat(staging, owner_path(), F_OK, 0), -1);
}

/* Owner files no session goes with are swept, unless someone holds them
 * (a session being created) or the session is there. */
static void
t_sweep_orphans(void)
{
    struct owner *held, *o;
    uint8_t k2[MANIFEST_KEY_LEN], k3[MANIFEST_KEY_LEN];
    char err[256], hex[MANIFEST_KEY_HEXLEN + 1], rel[200];

    manifest_key("orphan", 6, "x", 1, k2);
    manifest_key("with-session", 12, "x", 1, k3);
    CU_ASSERT_EQUAL(owner_acquire(staging, key, "node-b", &held, err,
                                  sizeof(err)), OWNER_NEW);
    owner_ready(held);                      /* being created by node-b */
    CU_ASSERT_EQUAL(owner_acquire(staging, k2, "node-a", &o, err,
                                  sizeof(err)), OWNER_NEW);
    owner_ready(o);
    owner_release(o);                       /* its node died: an orphan */
    CU_ASSERT_EQUAL(owner_acquire(staging, k3, "node-a", &o, err,
                                  sizeof(err)), OWNER_NEW);
    owner_ready(o);
    owner_release(o);
    manifest_key_hex(k3, hex);
    snprintf(rel, sizeof(rel), "%.2s/%s", hex, hex);
    CU_ASSERT_FATAL(mkdirat(staging, rel, 0700) == 0);   /* its session */

    CU_ASSERT_EQUAL(owner_sweep_orphans(staging, "node-a", err,
                                        sizeof(err)), 1);
    manifest_key_hex(k2, hex);
    snprintf(rel, sizeof(rel), "%.2s/%s.owner", hex, hex);
    CU_ASSERT_EQUAL(faccessat(staging, rel, F_OK, 0), -1);
    CU_ASSERT_EQUAL(faccessat(staging, owner_path(), F_OK, 0), 0);
    manifest_key_hex(k3, hex);
    snprintf(rel, sizeof(rel), "%.2s/%s.owner", hex, hex);
    CU_ASSERT_EQUAL(faccessat(staging, rel, F_OK, 0), 0);
    owner_remove(held);
    CU_ASSERT_EQUAL(owner_sweep_orphans(staging, "node-a", err,
                                        sizeof(err)), 0);
}

static CU_TestInfo tests[] = {
    { "orphan owner files are swept", t_sweep_orphans },
    { "node ids and slots", t_node_ids },
    { "nodes exclude each other, a node's processes share", t_nodes_exclude },
    { "gate held while the new owner rebuilds", t_gate_held_while_rebuilding },
    { "kill -9 of the holder releases", t_dead_holder_releases },
    { "check sees a takeover behind its back", t_check_sees_takeover },
    { "an unlinked owner file is not taken", t_unlinked_file_not_taken },
    { "removed under a sibling waiting for the gate",
      t_removed_under_a_waiting_sibling },
    CU_TEST_INFO_NULL
};
UNIT_SUITE("owner", setup, teardown, tests);
