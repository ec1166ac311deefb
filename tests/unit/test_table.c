/* test_table: the shared session table, in one process and across forked
 * processes that race, and die, in the middle of its operations. */
#define _GNU_SOURCE
#include "tests/unit/unit.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/store/manifest.h"
#include "shm/table.h"

#define NOW 1000000

static char name[64];
static char err[256];


static struct shm_table *
table_new(uint32_t capacity)
{
    static int        seq;
    struct shm_table *t = NULL;

    snprintf(name, sizeof(name), "/hfs-unit-%d-%d", (int)getpid(), ++seq);
    shm_table_unlink(name);
    CU_ASSERT_FATAL(shm_table_create(name, capacity, &t, err, sizeof(err))
                    == SHM_TABLE_OK);
    return t;
}


static void
table_free(struct shm_table *t)
{
    CU_ASSERT_EQUAL(shm_table_check(t, err, sizeof(err)), 0);
    shm_table_detach(t);
    CU_ASSERT_EQUAL(shm_table_unlink(name), 0);
}


static void
key_of(const char *id, const char *path, uint8_t key[SHM_KEY_LEN])
{
    manifest_key(id, strlen(id), path, strlen(path), key);
}


static struct shm_session
sess(uint64_t size)
{
    return (struct shm_session){ size, 0, MANIFEST_PROTO_CHUNKED, 0 };
}


/* Claims and activates a fresh session. */
static struct shm_ref
active(struct shm_table *t, const char *id, uint64_t size)
{
    struct shm_session s = sess(size);
    struct shm_ref     ref;
    uint8_t            key[SHM_KEY_LEN];

    key_of(id, "/a/file.bin", key);
    CU_ASSERT_FATAL(shm_table_claim(t, key, &s, NOW, NOW + 60, &ref, NULL,
                                    err, sizeof(err)) == SHM_TABLE_NEW);
    CU_ASSERT_FATAL(shm_table_activate(t, ref, NOW, err, sizeof(err))
                    == SHM_TABLE_OK);
    return ref;
}


/* lease + commit + unlease of [a, b). */
static int
put(struct shm_table *t, struct shm_ref ref, uint64_t a, uint64_t b,
    struct shm_view *v)
{
    struct shm_lease l;
    int              rc;

    rc = shm_table_lease(t, ref, a, b, NOW, NOW + 60, &l, v, err, sizeof(err));
    if (rc != SHM_TABLE_OK)
        return rc;
    rc = shm_table_commit(t, ref, l, a, b, NOW, 0, v, err, sizeof(err));
    if (shm_table_unlease(t, ref, l, err, sizeof(err)) != SHM_TABLE_OK)
        return SHM_TABLE_ERROR;
    return rc;
}


static void
t_claim_find_remove(void)
{
    struct shm_table      *t = table_new(16);
    struct shm_session     s = sess(1000);
    struct shm_ref         ref, ref2;
    struct shm_view        v;
    struct shm_table_stats st;
    uint8_t                key[SHM_KEY_LEN];

    key_of("sess-1", "/u/a.jpg", key);
    CU_ASSERT_EQUAL(shm_table_find(t, key, &ref, &v, err, sizeof(err)),
                    SHM_TABLE_NOTFOUND);
    CU_ASSERT_EQUAL(shm_table_claim(t, key, &s, NOW, NOW + 5, &ref, &v, err,
                                    sizeof(err)), SHM_TABLE_NEW);
    CU_ASSERT_EQUAL(v.state, SHM_CREATING);
    CU_ASSERT_EQUAL(v.size, 1000);
    CU_ASSERT_EQUAL(shm_table_activate(t, ref, NOW, err, sizeof(err)),
                    SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_find(t, key, &ref2, &v, err, sizeof(err)),
                    SHM_TABLE_OK);
    CU_ASSERT(ref2.idx == ref.idx && ref2.gen == ref.gen);
    CU_ASSERT_EQUAL(v.state, SHM_ACTIVE);
    CU_ASSERT_EQUAL(shm_table_claim(t, key, &s, NOW, NOW + 5, &ref2, &v, err,
                                    sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(ref2.idx, ref.idx);
    shm_table_stats(t, &st);
    CU_ASSERT_EQUAL(st.active, 1);
    CU_ASSERT_EQUAL(st.created, 1);
    CU_ASSERT_EQUAL(shm_table_remove(t, ref, err, sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_find(t, key, &ref2, &v, err, sizeof(err)),
                    SHM_TABLE_NOTFOUND);
    CU_ASSERT_EQUAL(shm_table_view(t, ref, &v, err, sizeof(err)),
                    SHM_TABLE_GONE);
    CU_ASSERT_EQUAL(shm_table_remove(t, ref, err, sizeof(err)),
                    SHM_TABLE_GONE);
    shm_table_stats(t, &st);
    CU_ASSERT_EQUAL(st.active, 0);
    table_free(t);
}


/* The key binds the signed path: the same session id on another path is
 * another session, and the bound size and protocol are checked. */
static void
t_binding(void)
{
    struct shm_table  *t = table_new(16);
    struct shm_session s = sess(1000), s2 = sess(2000), s3 = sess(1000);
    struct shm_ref     a, b, r;
    struct shm_view    v;
    uint8_t            ka[SHM_KEY_LEN], kb[SHM_KEY_LEN];

    key_of("same-id", "/alice/cat.jpg", ka);
    key_of("same-id", "/mallory/cat.jpg", kb);
    CU_ASSERT(memcmp(ka, kb, SHM_KEY_LEN) != 0);
    CU_ASSERT_EQUAL(shm_table_claim(t, ka, &s, NOW, NOW + 5, &a, &v, err,
                                    sizeof(err)), SHM_TABLE_NEW);
    CU_ASSERT_EQUAL(shm_table_activate(t, a, NOW, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(put(t, a, 0, 100, &v), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_claim(t, kb, &s, NOW, NOW + 5, &b, &v, err,
                                    sizeof(err)), SHM_TABLE_NEW);
    CU_ASSERT(b.idx != a.idx);
    CU_ASSERT_EQUAL(v.held, 0);
    CU_ASSERT_EQUAL(shm_table_claim(t, ka, &s2, NOW, NOW + 5, &r, &v, err,
                                    sizeof(err)), SHM_TABLE_CONFLICT);
    s3.proto = MANIFEST_PROTO_TUS;
    CU_ASSERT_EQUAL(shm_table_claim(t, ka, &s3, NOW, NOW + 5, &r, &v, err,
                                    sizeof(err)), SHM_TABLE_CONFLICT);
    CU_ASSERT_EQUAL(shm_table_find(t, ka, &r, &v, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(r.idx, a.idx);
    CU_ASSERT_EQUAL(v.held, 100);
    table_free(t);
}


static void
t_full(void)
{
    struct shm_table      *t = table_new(8);
    struct shm_session     s = sess(10);
    struct shm_ref         ref[9];
    struct shm_table_stats st;
    uint8_t                key[SHM_KEY_LEN];
    char                   id[16];

    for (int i = 0; i < 8; i++) {
        snprintf(id, sizeof(id), "s%d", i);
        key_of(id, "/p", key);
        CU_ASSERT_EQUAL(shm_table_claim(t, key, &s, NOW, NOW + 5, &ref[i],
                                        NULL, err, sizeof(err)),
                        SHM_TABLE_NEW);
    }
    key_of("s8", "/p", key);
    CU_ASSERT_EQUAL(shm_table_claim(t, key, &s, NOW, NOW + 5, &ref[8], NULL,
                                    err, sizeof(err)), SHM_TABLE_FULL);
    shm_table_stats(t, &st);
    CU_ASSERT_EQUAL(st.active, 8);
    CU_ASSERT_EQUAL(shm_table_remove(t, ref[3], err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(shm_table_claim(t, key, &s, NOW, NOW + 5, &ref[8], NULL,
                                    err, sizeof(err)), SHM_TABLE_NEW);
    CU_ASSERT_EQUAL(ref[8].idx, ref[3].idx);
    CU_ASSERT(ref[8].gen != ref[3].gen);
    CU_ASSERT_EQUAL(shm_table_view(t, ref[3], NULL, err, sizeof(err)),
                    SHM_TABLE_GONE);
    table_free(t);
}


/* A claim in CREATING is exclusive until its deadline, then taken over;
 * the abandoned creator's ref is void. */
static void
t_creating(void)
{
    struct shm_table  *t = table_new(8);
    struct shm_session s = sess(10);
    struct shm_ref     a, b;
    struct shm_view    v;
    uint8_t            key[SHM_KEY_LEN];

    key_of("c", "/p", key);
    CU_ASSERT_EQUAL(shm_table_claim(t, key, &s, NOW, NOW + 5, &a, &v, err,
                                    sizeof(err)), SHM_TABLE_NEW);
    CU_ASSERT_EQUAL(shm_table_claim(t, key, &s, NOW + 1, NOW + 6, &b, &v,
                                    err, sizeof(err)), SHM_TABLE_BUSY);
    CU_ASSERT_EQUAL(v.pid, getpid());
    CU_ASSERT_EQUAL(shm_table_claim(t, key, &s, NOW + 6, NOW + 11, &b, &v,
                                    err, sizeof(err)), SHM_TABLE_NEW);
    CU_ASSERT_EQUAL(b.idx, a.idx);
    CU_ASSERT_EQUAL(shm_table_activate(t, a, NOW + 7, err, sizeof(err)),
                    SHM_TABLE_GONE);
    CU_ASSERT_EQUAL(shm_table_activate(t, b, NOW + 7, err, sizeof(err)),
                    SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_activate(t, b, NOW + 7, err, sizeof(err)),
                    SHM_TABLE_CONFLICT);
    table_free(t);
}


static void
t_lease_commit_complete(void)
{
    struct shm_table      *t = table_new(8);
    struct shm_ref         ref = active(t, "l", 1000);
    struct shm_lease       l1, l2;
    struct shm_view        v;
    struct shm_table_stats st;
    struct ranges          rs;
    char                   text[64];

    CU_ASSERT_EQUAL(shm_table_lease(t, ref, 0, 100, NOW, NOW + 9, &l1, &v,
                                    err, sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_lease(t, ref, 50, 150, NOW, NOW + 9, &l2, &v,
                                    err, sizeof(err)), SHM_TABLE_BUSY);
    CU_ASSERT_EQUAL(v.pid, getpid());
    /* A commit outside its lease is a caller bug, refused. */
    CU_ASSERT_EQUAL(shm_table_commit(t, ref, l1, 0, 101, NOW, 0, &v, err,
                                     sizeof(err)), SHM_TABLE_CONFLICT);
    CU_ASSERT_EQUAL(shm_table_commit(t, ref, l1, 0, 100, NOW, 0, &v, err,
                                     sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.prefix, 100);
    CU_ASSERT_EQUAL(v.nleases, 1);
    CU_ASSERT_EQUAL(shm_table_unlease(t, ref, l1, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(put(t, ref, 0, 100, &v), SHM_TABLE_HELD);
    CU_ASSERT_EQUAL(put(t, ref, 20, 60, &v), SHM_TABLE_HELD);
    CU_ASSERT_EQUAL(put(t, ref, 50, 150, &v), SHM_TABLE_CONFLICT);
    CU_ASSERT_EQUAL(v.state, SHM_ACTIVE);
    CU_ASSERT_EQUAL(put(t, ref, 900, 1001, &v), SHM_TABLE_CONFLICT);
    CU_ASSERT_EQUAL(put(t, ref, 500, 600, &v), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.prefix, 100);
    CU_ASSERT_EQUAL(v.held, 200);
    CU_ASSERT_EQUAL(shm_table_ranges(t, ref, &rs, err, sizeof(err)), 0);
    ranges_format(&rs, text, sizeof(text));
    CU_ASSERT_STRING_EQUAL(text, "0-99,500-599");
    CU_ASSERT_EQUAL(shm_table_complete_begin(t, ref, NOW, NOW + 9, &v, err,
                                             sizeof(err)), SHM_TABLE_CONFLICT);
    /* tus: the lease's view tells whether the offset is Upload-Offset. */
    CU_ASSERT_EQUAL(shm_table_lease(t, ref, 100, 500, NOW, NOW + 9, &l1, &v,
                                    err, sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.prefix, 100);
    CU_ASSERT_EQUAL(shm_table_commit(t, ref, l1, 100, 300, NOW, 0, &v, err,
                                     sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_commit(t, ref, l1, 300, 500, NOW, 0, &v, err,
                                     sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.prefix, 600);
    CU_ASSERT_EQUAL(shm_table_unlease(t, ref, l1, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(put(t, ref, 600, 1000, &v), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.prefix, 1000);
    CU_ASSERT_EQUAL(v.nranges, 1);
    CU_ASSERT_EQUAL(shm_table_complete_begin(t, ref, NOW, NOW + 9, &v, err,
                                             sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.state, SHM_COMPLETING);
    CU_ASSERT_EQUAL(shm_table_complete_begin(t, ref, NOW, NOW + 9, &v, err,
                                             sizeof(err)), SHM_TABLE_BUSY);
    CU_ASSERT_EQUAL(v.pid, getpid());
    CU_ASSERT_EQUAL(put(t, ref, 0, 10, &v), SHM_TABLE_CONFLICT);
    CU_ASSERT_EQUAL(v.state, SHM_COMPLETING);
    CU_ASSERT_EQUAL(shm_table_complete_end(t, ref, SHM_DONE, NOW, err,
                                           sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_view(t, ref, &v, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(v.state, SHM_DONE);
    shm_table_stats(t, &st);
    CU_ASSERT_EQUAL(st.completed, 1);
    table_free(t);
}


/* Bounded: lease slots per session and holes per session. */
static void
t_lease_limits(void)
{
    struct shm_table *t = table_new(8);
    struct shm_ref    ref = active(t, "lim", 1 << 20);
    struct shm_lease  l[SHM_LEASES + 1];
    struct shm_view   v;
    int               i;

    for (i = 0; i < SHM_LEASES; i++)
        CU_ASSERT_EQUAL(shm_table_lease(t, ref, i * 10, i * 10 + 5, NOW,
                                        NOW + 9, &l[i], &v, err, sizeof(err)),
                        SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_lease(t, ref, 5000, 5001, NOW, NOW + 9, &l[i],
                                    &v, err, sizeof(err)), SHM_TABLE_FULL);
    /* Expired leases free their slots. */
    CU_ASSERT_EQUAL(shm_table_lease(t, ref, 5000, 5001, NOW + 10, NOW + 19,
                                    &l[i], &v, err, sizeof(err)),
                    SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_commit(t, ref, l[0], 0, 5, NOW + 10, 0, &v, err,
                                     sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.held, 5);     /* a late commit still counts */
    CU_ASSERT_EQUAL(shm_table_unlease(t, ref, l[i], err, sizeof(err)), 0);
    for (i = 0; i < RANGES_MAX - 2; i++)
        CU_ASSERT_EQUAL_FATAL(put(t, ref, 100 + i * 2, 101 + i * 2, &v),
                              SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.nranges, RANGES_MAX - 1);
    CU_ASSERT_EQUAL(put(t, ref, 100000, 100001, &v), SHM_TABLE_FULL);
    /* Growing a held range, or filling a hole, is always possible. */
    CU_ASSERT_EQUAL(put(t, ref, 5, 7, &v), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.nranges, RANGES_MAX - 1);
    CU_ASSERT_EQUAL(put(t, ref, 7, 100, &v), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.nranges, RANGES_MAX - 2);
    /* Room for one more range: two pending leases may not both take it;
     * a lease touching held bytes on its left needs none. */
    CU_ASSERT_EQUAL(shm_table_lease(t, ref, 200000, 200010, NOW + 10,
                                    NOW + 19, &l[0], &v, err, sizeof(err)),
                    SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_lease(t, ref, 300000, 300010, NOW + 10,
                                    NOW + 19, &l[1], &v, err, sizeof(err)),
                    SHM_TABLE_FULL);
    CU_ASSERT_EQUAL(shm_table_lease(t, ref, 101, 102, NOW + 10, NOW + 19,
                                    &l[1], &v, err, sizeof(err)),
                    SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_commit(t, ref, l[0], 200000, 200005, NOW + 10,
                                     0, &v, err, sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.nranges, RANGES_MAX - 1);
    /* Commits continue each other within a lease. */
    CU_ASSERT_EQUAL(shm_table_commit(t, ref, l[0], 200006, 200010, NOW + 10,
                                     0, &v, err, sizeof(err)),
                    SHM_TABLE_CONFLICT);
    CU_ASSERT_EQUAL(shm_table_commit(t, ref, l[0], 200005, 200010, NOW + 10,
                                     0, &v, err, sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_commit(t, ref, l[1], 101, 102, NOW + 10,
                                     0, &v, err, sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.nranges, RANGES_MAX - 2);
    table_free(t);
}


/* With the range list nearly full, the chunk at offset 0 still gets in,
 * and after it chunks that touch held bytes. */
static void
t_head_reserve(void)
{
    struct shm_table *t = table_new(8);
    struct shm_ref    ref = active(t, "head", 1 << 20);
    struct shm_view   v;

    for (int i = 1; i < RANGES_MAX; i++)
        CU_ASSERT_EQUAL_FATAL(put(t, ref, i * 2, i * 2 + 1, &v), 0);
    CU_ASSERT_EQUAL(v.nranges, RANGES_MAX - 1);
    CU_ASSERT_EQUAL(put(t, ref, 10000, 10001, &v), SHM_TABLE_FULL);
    CU_ASSERT_EQUAL(put(t, ref, 0, 1, &v), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.nranges, RANGES_MAX);
    CU_ASSERT_EQUAL(put(t, ref, 10000, 10001, &v), SHM_TABLE_FULL);
    CU_ASSERT_EQUAL(put(t, ref, 1, 2, &v), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.nranges, RANGES_MAX - 1);
    CU_ASSERT_EQUAL(v.prefix, 3);
    table_free(t);
}


static void
t_deferred_size(void)
{
    struct shm_table  *t = table_new(8);
    struct shm_session s = { SHM_SIZE_UNKNOWN, 0, MANIFEST_PROTO_TUS, 0 };
    struct shm_ref     ref;
    struct shm_view    v;
    uint8_t            key[SHM_KEY_LEN];

    key_of("tus", "/t", key);
    CU_ASSERT_EQUAL(shm_table_claim(t, key, &s, NOW, NOW + 5, &ref, &v, err,
                                    sizeof(err)), SHM_TABLE_NEW);
    CU_ASSERT_EQUAL(shm_table_activate(t, ref, NOW, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(put(t, ref, 0, 10, &v), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_complete_begin(t, ref, NOW, NOW + 9, &v, err,
                                             sizeof(err)), SHM_TABLE_CONFLICT);
    CU_ASSERT_EQUAL(shm_table_set_size(t, ref, 5, err, sizeof(err)),
                    SHM_TABLE_CONFLICT);
    CU_ASSERT_EQUAL(shm_table_set_size(t, ref, 20, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(shm_table_set_size(t, ref, 20, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(shm_table_set_size(t, ref, 30, err, sizeof(err)),
                    SHM_TABLE_CONFLICT);
    CU_ASSERT_EQUAL(put(t, ref, 15, 25, &v), SHM_TABLE_CONFLICT);
    CU_ASSERT_EQUAL(put(t, ref, 10, 20, &v), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(v.size, 20);
    CU_ASSERT_EQUAL(shm_table_complete_begin(t, ref, NOW, NOW + 9, &v, err,
                                             sizeof(err)), SHM_TABLE_OK);
    table_free(t);
}


struct expired {
    uint8_t keys[8][SHM_KEY_LEN];
    int     n, refuse;
};


static int
on_expire(const uint8_t key[SHM_KEY_LEN], void *arg)
{
    struct expired *x = arg;

    if (x->n < 8)
        memcpy(x->keys[x->n++], key, SHM_KEY_LEN);
    return x->refuse ? -1 : 0;
}


static void
t_expire(void)
{
    struct shm_table      *t = table_new(8);
    struct shm_session     s = sess(100);
    struct shm_ref         idle, fresh, busy, creating, done, dated;
    struct shm_lease       l;
    struct shm_view        v;
    struct shm_table_stats st;
    struct expired         x = { .n = 0 };
    uint8_t                kidle[SHM_KEY_LEN], kc[SHM_KEY_LEN];
    uint8_t                kd[SHM_KEY_LEN];

    idle = active(t, "idle", 100);
    fresh = active(t, "fresh", 100);
    key_of("dated", "/p", kd);
    s.expires = NOW + 45;
    CU_ASSERT_EQUAL(shm_table_claim(t, kd, &s, NOW, NOW + 50, &dated, &v,
                                    err, sizeof(err)), SHM_TABLE_NEW);
    CU_ASSERT_EQUAL(shm_table_activate(t, dated, NOW + 40, err, sizeof(err)),
                    0);
    CU_ASSERT_EQUAL(v.expires, NOW + 45);
    s.expires = 0;
    busy = active(t, "busy", 100);
    done = active(t, "done", 10);
    key_of("idle", "/a/file.bin", kidle);
    key_of("creating", "/p", kc);
    CU_ASSERT_EQUAL(shm_table_claim(t, kc, &s, NOW, NOW + 50, &creating, &v,
                                    err, sizeof(err)), SHM_TABLE_NEW);
    CU_ASSERT_EQUAL(shm_table_lease(t, fresh, 0, 1, NOW + 40, NOW + 41, &l,
                                    &v, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(shm_table_unlease(t, fresh, l, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(shm_table_lease(t, busy, 0, 1, NOW, NOW + 500, &l, &v,
                                    err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(put(t, done, 0, 10, &v), 0);
    CU_ASSERT_EQUAL(shm_table_complete_begin(t, done, NOW, NOW + 9, &v, err,
                                             sizeof(err)), 0);
    CU_ASSERT_EQUAL(shm_table_complete_end(t, done, SHM_DONE, NOW + 20, err,
                                           sizeof(err)), 0);
    /* At NOW+30 with timeout 30 only "idle" (last active NOW) is due. */
    x.refuse = 1;
    CU_ASSERT_EQUAL(shm_table_expire_scan(t, NOW + 30, 30, on_expire, &x,
                                          err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(x.n, 1);
    CU_ASSERT(memcmp(x.keys[0], kidle, SHM_KEY_LEN) == 0);
    CU_ASSERT_EQUAL(shm_table_view(t, idle, &v, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(v.state, SHM_DOOMED);
    CU_ASSERT_EQUAL(put(t, idle, 0, 1, &v), SHM_TABLE_CONFLICT);
    /* Refused by the callback: offered again next time, then freed. At
     * NOW+60 the DONE session, the abandoned CREATING and the one past
     * its absolute expiry go too; the session with a live lease stays. */
    x.refuse = 0;
    x.n = 0;
    CU_ASSERT_EQUAL(shm_table_expire_scan(t, NOW + 60, 30, on_expire, &x,
                                          err, sizeof(err)), 4);
    CU_ASSERT_EQUAL(x.n, 4);
    CU_ASSERT_EQUAL(shm_table_view(t, dated, &v, err, sizeof(err)),
                    SHM_TABLE_GONE);
    CU_ASSERT_EQUAL(shm_table_view(t, idle, &v, err, sizeof(err)),
                    SHM_TABLE_GONE);
    CU_ASSERT_EQUAL(shm_table_view(t, done, &v, err, sizeof(err)),
                    SHM_TABLE_GONE);
    CU_ASSERT_EQUAL(shm_table_view(t, creating, &v, err, sizeof(err)),
                    SHM_TABLE_GONE);
    CU_ASSERT_EQUAL(shm_table_view(t, fresh, &v, err, sizeof(err)),
                    SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_view(t, busy, &v, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(v.state, SHM_ACTIVE);
    shm_table_stats(t, &st);
    CU_ASSERT_EQUAL(st.expired, 2);
    CU_ASSERT_EQUAL(st.active, 2);
    table_free(t);
}


/* A lease held by a process that died is dropped by forget_pid. */
static void
t_forget_pid(void)
{
    struct shm_table *t = table_new(8);
    struct shm_ref    ref = active(t, "f", 100);
    struct shm_lease  l;
    struct shm_view   v;
    pid_t             child;
    int               st;

    child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0)
        _exit(shm_table_lease(t, ref, 0, 50, NOW, NOW + 999, &l, NULL, NULL,
                              0) == SHM_TABLE_OK ? 0 : 1);
    CU_ASSERT_FATAL(waitpid(child, &st, 0) == child);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CU_ASSERT_EQUAL(shm_table_lease(t, ref, 10, 20, NOW, NOW + 9, &l, &v, err,
                                    sizeof(err)), SHM_TABLE_BUSY);
    CU_ASSERT_EQUAL(v.pid, child);
    CU_ASSERT_EQUAL(shm_table_forget_pid(t, child, 0, err, sizeof(err)), 1);
    CU_ASSERT_EQUAL(shm_table_lease(t, ref, 10, 20, NOW, NOW + 9, &l, &v, err,
                                    sizeof(err)), SHM_TABLE_OK);
    table_free(t);
}


static void
t_attach(void)
{
    struct shm_table *t = table_new(8), *t2 = NULL;
    struct shm_ref    ref = active(t, "att", 100), r2;
    struct shm_view   v;
    uint8_t           key[SHM_KEY_LEN];
    uint32_t         *layout;
    int               fd;

    CU_ASSERT_EQUAL(shm_table_attach(name, getpid(), &t2, err, sizeof(err)),
                    SHM_TABLE_OK);
    key_of("att", "/a/file.bin", key);
    CU_ASSERT_EQUAL(shm_table_find(t2, key, &r2, &v, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(r2.idx, ref.idx);
    shm_table_detach(t2);
    CU_ASSERT_EQUAL(shm_table_attach(name, getpid() + 1, &t2, err,
                                     sizeof(err)), SHM_TABLE_ERROR);
    CU_ASSERT(strstr(err, "another master") != NULL);
    /* The layout version is the u32 after the 8-byte magic. */
    fd = shm_open(name, O_RDWR, 0);
    CU_ASSERT_FATAL(fd >= 0);
    layout = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    CU_ASSERT_FATAL(layout != MAP_FAILED);
    layout[2]++;
    CU_ASSERT_EQUAL(shm_table_attach(name, 0, &t2, err, sizeof(err)),
                    SHM_TABLE_ERROR);
    CU_ASSERT(strstr(err, "another version") != NULL);
    layout[2]--;
    layout[3]++;                        /* sizeof(pthread_mutex_t) */
    CU_ASSERT_EQUAL(shm_table_attach(name, 0, &t2, err, sizeof(err)),
                    SHM_TABLE_ERROR);
    CU_ASSERT(strstr(err, "pthread_mutex_t") != NULL);
    layout[3]--;
    layout[0] ^= 1;
    CU_ASSERT_EQUAL(shm_table_attach(name, 0, &t2, err, sizeof(err)),
                    SHM_TABLE_ERROR);
    layout[0] ^= 1;
    munmap(layout, 4096);
    CU_ASSERT_EQUAL(shm_table_attach(name, 0, &t2, err, sizeof(err)), 0);
    shm_table_detach(t2);
    /* A second create of a live name is refused, naming the creator,
     * and leaves the segment alone; once its creator let go of it (the
     * flock goes with the last fd), the name is stale and replaced. */
    CU_ASSERT_EQUAL(shm_table_create(name, 8, &t2, err, sizeof(err)),
                    SHM_TABLE_BUSY);
    CU_ASSERT(strstr(err, "in use by another running") != NULL);
    CU_ASSERT_EQUAL(shm_table_attach(name, getpid(), &t2, err, sizeof(err)),
                    0);
    shm_table_detach(t2);
    table_free(t);
    CU_ASSERT_EQUAL(shm_table_create(name, 8, &t2, err, sizeof(err)), 0);
    shm_table_detach(t2);
    shm_table_unlink(name);
}


#define ROUNDS 10000

/* One child's share of the concurrency test. Child k fills its own session
 * byte by byte, and the shared one's bytes 2i + k: the two children's
 * commits interleave in the same range list, each one a read-modify-write
 * of it (a child too far ahead is told FULL and waits). Claims of private
 * keys churn the index and free list at the same time. */
static int
child_work(struct shm_table *t, int k, struct shm_ref own,
           struct shm_ref shared, int go)
{
    struct shm_session s = sess(10);
    struct shm_ref     r;
    uint8_t            key[SHM_KEY_LEN];
    char               id[32], c;
    int                rc;

    if (read(go, &c, 1) != 0)           /* start together */
        return 3;
    for (uint64_t i = 0; i < ROUNDS; i++) {
        uint64_t b = 2 * i + (uint64_t)k;
        if (put(t, own, i, i + 1, NULL) != SHM_TABLE_OK)
            return 1;
        for (long spin = 0; (rc = put(t, shared, b, b + 1, NULL))
                            == SHM_TABLE_FULL; spin++) {
            if (spin > 1000000)
                return 4;               /* the other child is not moving */
            sched_yield();
        }
        if (rc != SHM_TABLE_OK)
            return 1;
        if (i % 50 != 0)
            continue;
        snprintf(id, sizeof(id), "churn-%d-%llu", k, (unsigned long long)i);
        key_of(id, "/c", key);
        if (shm_table_claim(t, key, &s, NOW, NOW + 5, &r, NULL, NULL, 0)
                != SHM_TABLE_NEW
            || shm_table_remove(t, r, NULL, 0) != SHM_TABLE_OK)
            return 2;
    }
    return 0;
}


static void
t_concurrent(void)
{
    struct shm_table      *t = table_new(64);
    struct shm_ref         own[2], shared;
    struct shm_view        v;
    struct shm_table_stats st;
    pid_t                  kids[2];
    int                    status, go[2];

    own[0] = active(t, "own0", ROUNDS);
    own[1] = active(t, "own1", ROUNDS);
    shared = active(t, "shared", 1 << 30);
    /* Ranges above the children's make every change of theirs a long
     * memmove: a wide window for a missing lock to show. */
    for (int i = 0; i < 200; i++)
        CU_ASSERT_EQUAL_FATAL(put(t, shared, (1 << 29) + 2 * i,
                                  (1 << 29) + 2 * i + 1, NULL), 0);
    CU_ASSERT_FATAL(pipe(go) == 0);
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        CU_ASSERT_FATAL(kids[k] >= 0);
        if (kids[k] == 0) {
            struct shm_table *mine = t;
            close(go[1]);
            /* One child maps the segment afresh, at another address. */
            if (k == 1 && shm_table_attach(name, 0, &mine, NULL, 0) != 0)
                _exit(9);
            _exit(child_work(mine, k, own[k], shared, go[0]));
        }
    }
    close(go[0]);
    close(go[1]);
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_FATAL(waitpid(kids[k], &status, 0) == kids[k]);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL(shm_table_view(t, own[k], &v, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(v.held, ROUNDS);
        CU_ASSERT_EQUAL(v.prefix, ROUNDS);
        CU_ASSERT_EQUAL(v.nleases, 0);
    }
    CU_ASSERT_EQUAL(shm_table_view(t, shared, &v, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(v.held, 2 * ROUNDS + 200);
    CU_ASSERT_EQUAL(v.prefix, 2 * ROUNDS);
    CU_ASSERT_EQUAL(v.nranges, 201);
    shm_table_stats(t, &st);
    CU_ASSERT_EQUAL(st.active, 3);
    CU_ASSERT_EQUAL(st.created, 3 + 2 * (ROUNDS / 50));
    CU_ASSERT_EQUAL(st.repairs, 0);
    table_free(t);
}


/* The repair callback: what "the manifest" says about the session. */
#define BASE     (1ull << 39)
#define NBASE    250

struct disk {
    uint8_t key[SHM_KEY_LEN];
    int     calls;
};


static void
base_ranges(struct ranges *rs)
{
    ranges_init(rs);
    for (uint64_t i = 0; i < NBASE; i++)
        ranges_add(rs, BASE + 2 * i, BASE + 2 * i + 1);
}


static int
from_disk(const uint8_t key[SHM_KEY_LEN], struct shm_rebuild *out, void *arg)
{
    struct disk *d = arg;

    d->calls++;
    if (memcmp(key, d->key, SHM_KEY_LEN) != 0)
        return -1;
    out->state = SHM_ACTIVE;
    out->size = 1ull << 40;
    base_ranges(&out->held);
    return 0;
}


/* The victim's loop: each pair of commits inserts a range in front of
 * ~250 others and then merges it, so the entry lock is often held with
 * a change half done (a 4 KiB memmove). Claims churn the index too. */
static void
hammer(struct shm_table *t, struct shm_ref ref, uint64_t p)
{
    struct shm_session s = sess(10);
    struct shm_ref     r;
    uint8_t            key[SHM_KEY_LEN];

    for (uint64_t i = 0;; i++, p -= 2) {
        (void)put(t, ref, p - 2, p - 1, NULL);
        (void)put(t, ref, p - 1, p, NULL);
        if (i % 16 != 0)
            continue;
        key_of(i & 16 ? "x" : "y", "/k", key);
        if (shm_table_claim(t, key, &s, NOW, NOW + 5, &r, NULL, NULL, 0)
            == SHM_TABLE_NEW)
            (void)shm_table_remove(t, r, NULL, 0);
    }
}


/* Torture: a child hammers the table and is SIGKILLed at random points
 * until deaths in the middle of an entry change have been repaired from
 * "disk"; the table must be consistent after every kill. */
static void
t_kill_torture(void)
{
    struct shm_table      *t = table_new(32);
    struct shm_ref         ref = active(t, "victim", 1ull << 40);
    struct shm_view        v;
    struct shm_table_stats st;
    struct ranges          rs;
    struct disk            d = { .calls = 0 };
    int                    round;

    key_of("victim", "/a/file.bin", d.key);
    shm_table_set_repair(t, from_disk, &d);
    base_ranges(&rs);
    for (uint32_t i = 0; i < rs.n; i++)
        CU_ASSERT_EQUAL_FATAL(put(t, ref, rs.r[i].start, rs.r[i].end, &v), 0);
    srand((unsigned)getpid());
    for (round = 0; round < 1000 && d.calls < 3; round++) {
        /* Go on below what earlier victims left, so ranges stay ~NBASE. */
        uint64_t p = rs.r[0].start < BASE ? rs.r[0].start : 1ull << 38;
        pid_t    child = fork();

        CU_ASSERT_FATAL(child >= 0);
        if (child == 0)
            hammer(t, ref, p);
        usleep(200 + rand() % 2000);
        kill(child, SIGKILL);
        CU_ASSERT_FATAL(waitpid(child, NULL, 0) == child);
        /* As the master does after reaping a worker. */
        CU_ASSERT_FATAL(shm_table_forget_pid(t, child, 0, err, sizeof(err)) >= 0);
        CU_ASSERT_EQUAL_FATAL(shm_table_view(t, ref, &v, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(v.state, SHM_ACTIVE);
        CU_ASSERT_EQUAL(v.nleases, 0);
        CU_ASSERT_FATAL(v.nranges >= NBASE && v.nranges <= NBASE + 2);
        CU_ASSERT_EQUAL_FATAL(shm_table_check(t, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL_FATAL(shm_table_ranges(t, ref, &rs, err, sizeof(err)),
                              0);
        /* A victim killed between its two commits leaves a hole: fill it. */
        if (rs.n > 1 && rs.r[1].start < BASE) {
            CU_ASSERT_EQUAL_FATAL(put(t, ref, rs.r[0].end, rs.r[1].start,
                                      &v), 0);
            CU_ASSERT_EQUAL_FATAL(shm_table_ranges(t, ref, &rs, err,
                                                   sizeof(err)), 0);
        }
    }
    shm_table_stats(t, &st);
    CU_ASSERT(st.repairs > 0);
    CU_ASSERT(d.calls > 0);
    CU_ASSERT(st.active >= 1 && st.active <= 3);
    table_free(t);
}


/* ENOTRECOVERABLE everywhere is fixed by the master's reset. */
static void
t_reset(void)
{
    struct shm_table *t = table_new(8);
    struct shm_ref    ref = active(t, "r", 100);
    struct shm_view   v;

    CU_ASSERT_EQUAL(put(t, ref, 0, 10, &v), 0);
    CU_ASSERT_EQUAL(shm_table_reset(t, err, sizeof(err)), SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_view(t, ref, &v, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(v.held, 10);
    CU_ASSERT_EQUAL(put(t, ref, 10, 20, &v), 0);
    table_free(t);
}


/* A published session frees its slot SHM_DONE_KEEP_S after completion even
 * when the idle timeout is a day: otherwise a table of N entries refuses
 * uploads after N have completed. */
static void
t_done_expires_soon(void)
{
    struct shm_table *t = table_new(4);
    struct shm_ref    done;
    struct shm_view   v;
    struct expired    x = { .n = 0 };

    done = active(t, "done-soon", 10);
    CU_ASSERT_EQUAL(put(t, done, 0, 10, &v), 0);
    CU_ASSERT_EQUAL(shm_table_complete_begin(t, done, NOW, NOW + 9, &v, err,
                                             sizeof(err)), 0);
    CU_ASSERT_EQUAL(shm_table_complete_end(t, done, SHM_DONE, NOW, err,
                                           sizeof(err)), 0);
    CU_ASSERT_EQUAL(shm_table_expire_scan(t, NOW + SHM_DONE_KEEP_S - 1,
                                          86400, on_expire, &x, err,
                                          sizeof(err)), 0);
    CU_ASSERT_EQUAL(shm_table_view(t, done, &v, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(v.state, SHM_DONE);
    CU_ASSERT_EQUAL(shm_table_expire_scan(t, NOW + SHM_DONE_KEEP_S, 86400,
                                          on_expire, &x, err, sizeof(err)), 1);
    CU_ASSERT_EQUAL(shm_table_view(t, done, &v, err, sizeof(err)),
                    SHM_TABLE_GONE);
    table_free(t);
}

/* The hash in progress is kept only over held bytes and only if it
 * reaches further. A holder that died while storing it leaves INTENT_COMMIT
 * set, and the repair drops it (the manifest has none); a reset keeps a
 * whole one. */
static void
t_digest(void)
{
    struct shm_table    *t = table_new(8);
    struct shm_ref       ref = active(t, "dig", 1000);
    struct shm_view      v;
    struct digest_sha256 d, got;

    CU_ASSERT_EQUAL(shm_table_digest(t, ref, &got, err, sizeof(err)),
                    SHM_TABLE_OK);
    CU_ASSERT_EQUAL(got.len, 0);
    digest_sha256_init(&d);
    digest_sha256_update(&d, "0123456789", 10);
    CU_ASSERT_EQUAL(shm_table_offer_digest(t, ref, &d, err, sizeof(err)),
                    SHM_TABLE_OK);
    CU_ASSERT_EQUAL(shm_table_digest(t, ref, &got, err, sizeof(err)),
                    SHM_TABLE_OK);
    CU_ASSERT_EQUAL(got.len, 0);               /* nothing held yet */
    CU_ASSERT_EQUAL(put(t, ref, 0, 10, &v), SHM_TABLE_OK);
    shm_table_offer_digest(t, ref, &d, err, sizeof(err));
    shm_table_digest(t, ref, &got, err, sizeof(err));
    CU_ASSERT(got.len == 10 && memcmp(&got, &d, sizeof(d)) == 0);

    struct digest_sha256 shorter;
    digest_sha256_init(&shorter);
    digest_sha256_update(&shorter, "01234", 5);
    shm_table_offer_digest(t, ref, &shorter, err, sizeof(err));
    shm_table_digest(t, ref, &got, err, sizeof(err));
    CU_ASSERT_EQUAL(got.len, 10);              /* the longer one stays */

    CU_ASSERT_EQUAL(put(t, ref, 20, 30, &v), SHM_TABLE_OK);
    digest_sha256_update(&d, "abcdefghijklmnopqrst", 20);   /* to 30 */
    shm_table_offer_digest(t, ref, &d, err, sizeof(err));
    shm_table_digest(t, ref, &got, err, sizeof(err));
    CU_ASSERT_EQUAL(got.len, 10);              /* [10, 20) is a hole */

    CU_ASSERT_EQUAL(shm_table_reset(t, err, sizeof(err)), 0);
    shm_table_digest(t, ref, &got, err, sizeof(err));
    CU_ASSERT_EQUAL(got.len, 10);
    table_free(t);
}


static CU_TestInfo table_tests[] = {
    { "claim, find, remove", t_claim_find_remove },
    { "session id bound to signed path and size", t_binding },
    { "full table is a distinct error", t_full },
    { "CREATING: exclusive, then taken over", t_creating },
    { "lease, commit, duplicate, complete", t_lease_commit_complete },
    { "lease slots and holes are bounded", t_lease_limits },
    { "offset 0 is never shut out by holes", t_head_reserve },
    { "tus deferred length", t_deferred_size },
    { "expiry scan", t_expire },
    { "a published session frees its slot soon", t_done_expires_soon },
    { "forget a dead process's leases", t_forget_pid },
    { "attach refuses a foreign layout", t_attach },
    { "2 processes x 10000 updates, none lost", t_concurrent },
    { "SIGKILL at random points: repaired", t_kill_torture },
    { "reset re-inits every lock", t_reset },
    { "a hash in progress over held bytes only", t_digest },
    CU_TEST_INFO_NULL
};

UNIT_SUITE("table", NULL, NULL, table_tests);
