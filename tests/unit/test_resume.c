/* test_resume: one session's fate from its manifest (lib/store/resume.h),
 * the rules a restart and a cluster takeover share: resumable sessions
 * come back with exactly their durable ranges; never acknowledged,
 * finished, aborted and idle ones are removed; a published tus final
 * lingers; corruption is left in place. */
#define _GNU_SOURCE
#include "tests/unit/unit.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/store/resume.h"
#include "lib/util/crc32c.h"

static char *dir;
static int   sfd;
static struct resume rs;                 /* large */
static const struct resume_limits LIM = {
    .now = 2000000000, .idle_timeout = 3600, .done_keep = 300,
    .flags = MANIFEST_TRUNCATE,
};

static int
setup(void)
{
    dir = unit_mkdtemp();
    sfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return sfd < 0;
}

static int
teardown(void)
{
    close(sfd);
    unit_rmtree(dir);
    free(dir);
    return 0;
}

/* A session of 256 bytes with [0, 128) held, its manifest's mtime `age`
 * seconds before LIM.now. */
static struct manifest *
session(const char *id, int concat, int64_t age, uint8_t k[MANIFEST_KEY_LEN])
{
    struct manifest_header h;
    struct manifest *m;
    char err[256], buf[128], hex[MANIFEST_KEY_HEXLEN + 1], path[256];

    memset(&h, 0, sizeof(h));
    h.proto = MANIFEST_PROTO_TUS;
    h.concat = (uint8_t)concat;
    h.size = h.mac_size = 256;
    snprintf(h.id, sizeof(h.id), "%s", id);
    snprintf(h.path, sizeof(h.path), "a/%s.bin", id);
    manifest_key(h.id, strlen(h.id), h.path, strlen(h.path), k);
    CU_ASSERT_FATAL(manifest_create(sfd, k, &h, &m, err, sizeof(err)) == 0);
    memset(buf, 'x', sizeof(buf));
    CU_ASSERT_FATAL(pwrite(manifest_data_fd(m), buf, 128, 0) == 128);
    struct manifest_chunk c = { 0, 128, 0, crc32c(0, buf, 128) };
    CU_ASSERT_FATAL(manifest_append_chunks(m, &c, 1, err, sizeof(err)) == 0);
    manifest_key_hex(k, hex);
    snprintf(path, sizeof(path), "%s/%.2s/%s/manifest", dir, hex, hex);
    struct timespec ts[2] = { { LIM.now - age, 0 }, { LIM.now - age, 0 } };
    CU_ASSERT(utimensat(AT_FDCWD, path, ts, 0) == 0);
    return m;
}

static int
exists(const uint8_t k[MANIFEST_KEY_LEN])
{
    char hex[MANIFEST_KEY_HEXLEN + 1], rel[200];
    manifest_key_hex(k, hex);
    snprintf(rel, sizeof(rel), "%.2s/%s", hex, hex);
    return faccessat(sfd, rel, F_OK, 0) == 0;
}

static void
t_active_comes_back_with_its_ranges(void)
{
    uint8_t k[MANIFEST_KEY_LEN];
    char err[256];
    manifest_close(session("active", MANIFEST_CONCAT_NONE, 10, k));
    CU_ASSERT_EQUAL(resume_session(sfd, k, &LIM, &rs, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(rs.verdict, RESUME_ACTIVE);
    CU_ASSERT_EQUAL(rs.st.size, 256);
    CU_ASSERT_EQUAL(ranges_total(&rs.st.held), 128);
    CU_ASSERT_EQUAL(ranges_prefix(&rs.st.held), 128);
    CU_ASSERT(exists(k));
}

static void
t_over_is_removed(void)
{
    uint8_t k[MANIFEST_KEY_LEN], sha[32] = { 0 };
    char err[256];
    struct manifest *m;

    manifest_close(session("idle", MANIFEST_CONCAT_NONE, 3601, k));
    CU_ASSERT_EQUAL(resume_session(sfd, k, &LIM, &rs, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(rs.verdict, RESUME_REMOVED);
    CU_ASSERT_STRING_EQUAL(rs.why, "expired");
    CU_ASSERT(!exists(k));

    m = session("aborted", MANIFEST_CONCAT_NONE, 10, k);
    CU_ASSERT(manifest_append_abort(m, "terminated", err, sizeof(err)) == 0);
    manifest_close(m);
    CU_ASSERT_EQUAL(resume_session(sfd, k, &LIM, &rs, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(rs.verdict, RESUME_REMOVED);
    CU_ASSERT_STRING_EQUAL(rs.why, "aborted");
    CU_ASSERT(!exists(k));

    m = session("complete", MANIFEST_CONCAT_NONE, 10, k);
    CU_ASSERT(manifest_append_complete(m, sha, "a/complete.bin", err,
                                       sizeof(err)) == 0);
    manifest_close(m);
    CU_ASSERT_EQUAL(resume_session(sfd, k, &LIM, &rs, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(rs.verdict, RESUME_REMOVED);
    CU_ASSERT_STRING_EQUAL(rs.why, "complete");
    CU_ASSERT(!exists(k));

    /* No session at all (a takeover of a published one): removed, ok. */
    CU_ASSERT_EQUAL(resume_session(sfd, k, &LIM, &rs, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(rs.verdict, RESUME_REMOVED);
}

static void
t_never_acknowledged_is_removed(void)
{
    uint8_t k[MANIFEST_KEY_LEN];
    char err[256], hex[MANIFEST_KEY_HEXLEN + 1], rel[200];
    manifest_close(session("torn", MANIFEST_CONCAT_NONE, 10, k));
    manifest_key_hex(k, hex);
    snprintf(rel, sizeof(rel), "%.2s/%s/manifest", hex, hex);
    int fd = openat(sfd, rel, O_WRONLY | O_TRUNC);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(write(fd, "HFM", 3) == 3);          /* a torn HEADER */
    close(fd);
    CU_ASSERT_EQUAL(resume_session(sfd, k, &LIM, &rs, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(rs.verdict, RESUME_REMOVED);
    CU_ASSERT_STRING_EQUAL(rs.why, "never acknowledged");
    CU_ASSERT(!exists(k));
}

static void
t_published_final_lingers(void)
{
    uint8_t k[MANIFEST_KEY_LEN], sha[32] = { 1 };
    char err[256];
    struct manifest *m = session("final", MANIFEST_CONCAT_FINAL, 0, k);
    CU_ASSERT(manifest_append_complete(m, sha, "a/final.bin", err,
                                       sizeof(err)) == 0);
    manifest_close(m);
    /* Its COMPLETE just written: now is its mtime. */
    struct resume_limits lim = LIM;
    lim.now = (int64_t)time(NULL);
    CU_ASSERT_EQUAL(resume_session(sfd, k, &lim, &rs, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(rs.verdict, RESUME_DONE);
    CU_ASSERT(rs.expires > lim.now && rs.expires <= lim.now + 300);
    CU_ASSERT(exists(k));
    lim.now += 301;
    CU_ASSERT_EQUAL(resume_session(sfd, k, &lim, &rs, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(rs.verdict, RESUME_REMOVED);
    CU_ASSERT(!exists(k));
}

static void
t_corruption_is_left_in_place(void)
{
    uint8_t k[MANIFEST_KEY_LEN];
    char err[256], hex[MANIFEST_KEY_HEXLEN + 1], rel[200];
    manifest_close(session("corrupt", MANIFEST_CONCAT_NONE, 10, k));
    manifest_key_hex(k, hex);
    snprintf(rel, sizeof(rel), "%.2s/%s/manifest", hex, hex);
    /* A CRC-valid record of a version we do not know: the HEADER's
     * version byte changed and its CRC recomputed. */
    int fd = openat(sfd, rel, O_RDWR);
    CU_ASSERT_FATAL(fd >= 0);
    unsigned char rec[8192];
    ssize_t n = pread(fd, rec, sizeof(rec), 0);
    CU_ASSERT_FATAL(n > 24);
    uint32_t len = rec[8] | rec[9] << 8 | rec[10] << 16 | (uint32_t)rec[11] << 24;
    rec[4] = 9;
    uint32_t crc = crc32c(0, rec, 20 + len);
    for (int i = 0; i < 4; i++)
        rec[20 + len + i] = (unsigned char)(crc >> (8 * i));
    CU_ASSERT(pwrite(fd, rec, 24 + len, 0) == (ssize_t)(24 + len));
    close(fd);
    CU_ASSERT_EQUAL(resume_session(sfd, k, &LIM, &rs, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(rs.verdict, RESUME_CORRUPT);
    CU_ASSERT(err[0] != '\0');
    CU_ASSERT(exists(k));
}

static CU_TestInfo tests[] = {
    { "an active session comes back with its ranges",
      t_active_comes_back_with_its_ranges },
    { "idle, aborted, complete and missing sessions are removed",
      t_over_is_removed },
    { "a session never acknowledged is removed",
      t_never_acknowledged_is_removed },
    { "a published tus final lingers, then goes", t_published_final_lingers },
    { "corruption is left in place", t_corruption_is_left_in_place },
    CU_TEST_INFO_NULL
};
UNIT_SUITE("resume", setup, teardown, tests);
