/* fuzz_manifest: lib/store/manifest*.c, replay and recovery of a session's
 * manifest from whatever bytes a crash, a bad disk or a bug left behind.
 *
 * fuzz-sources: lib/store/manifest.c lib/store/manifest_dir.c lib/store/manifest_record.c lib/util/crc32c.c lib/util/ranges.c lib/util/syncsite.c
 * fuzz-libs:    -lcrypto
 * fuzz-args:    -max_len=65536
 *
 * Input: one mode byte, then the manifest file's bytes. Random bytes almost
 * never carry a good CRC, so the mode lets the fuzzer past it: 0 writes the
 * bytes as they are; 1 recomputes the CRC of every record that is framed
 * completely; 2 also sets each record's seq to its offset; 3 also fixes
 * magic, version and flags (the record layout of docs/recovery.md, with
 * REC_* from lib/store/manifest_record.h, so the fixups follow it). The
 * session is opened under a staging directory in /dev/shm (fsync is free
 * there) and replayed, loaded, truncated and appended to. Properties:
 *   - never a crash, a hang, or an error other than the documented ones;
 *   - replayed records are well formed (types, string bounds, chunk
 *     ranges), start at offset 0 and ascend, and end + torn = file size;
 *   - fn's return value stops the replay and is returned;
 *   - a load that succeeds holds sorted disjoint ranges inside the data
 *     file and the declared size;
 *   - MANIFEST_TRUNCATE drops the torn tail, after which a second replay
 *     sees the same records and no torn bytes, and a record appended then
 *     is the last one replayed (nothing torn hides it). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/store/manifest.h"
#include "lib/store/manifest_record.h"
#include "lib/util/crc32c.h"
#include "lib/util/ranges.h"
#include "tests/fuzz/fuzz.h"

#define STOPPED         42

static char    staging[64];
static int     staging_fd = -1;
static uint8_t key[MANIFEST_KEY_LEN];
static int     sess_fd = -1;            /* the session directory */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void
cleanup(void)
{
    if (staging[0] != '\0')
        nftw(staging, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void
setup(void)
{
    char hex[MANIFEST_KEY_HEXLEN + 1], fan[3], *dir;
    int  fanfd;

    dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(staging, sizeof(staging), "%s/hfs-fuzz-XXXXXX", dir);
    FUZZ_CHECK(mkdtemp(staging) != NULL);
    atexit(cleanup);
    staging_fd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    manifest_key("fuzz", 4, "a/b.bin", 7, key);
    manifest_key_hex(key, hex);
    memcpy(fan, hex, 2);
    fan[2] = '\0';
    FUZZ_CHECK(mkdirat(staging_fd, fan, 0700) == 0);
    FUZZ_CHECK((fanfd = openat(staging_fd, fan, O_RDONLY | O_DIRECTORY))
               >= 0);
    FUZZ_CHECK(mkdirat(fanfd, hex, 0700) == 0);
    FUZZ_CHECK((sess_fd = openat(fanfd, hex, O_RDONLY | O_DIRECTORY)) >= 0);
    close(fanfd);
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16
           | (uint32_t)p[3] << 24;
}

static void
put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
fixup(uint8_t *b, size_t n, int mode)
{
    size_t off = 0;

    while (mode > 0 && n - off >= REC_HDR + REC_TRAILER) {
        uint32_t plen = get32(b + off + 8);
        if (plen > REC_PAYLOAD_MAX
            || n - off - REC_HDR - REC_TRAILER < plen)
            break;
        if (mode >= 2)
            put64(b + off + 12, off);
        if (mode >= 3) {
            put32(b + off, REC_MAGIC);
            b[off + 4] = REC_VERSION;
            b[off + 6] = b[off + 7] = 0;
        }
        put32(b + off + REC_HDR + plen, crc32c(0, b + off, REC_HDR + plen));
        off += REC_HDR + plen + REC_TRAILER;
    }
}

struct seen {
    uint32_t n, stop_at;
    uint64_t last_seq;
    struct manifest_record last;
};

static int
on_record(const struct manifest_record *r, void *arg)
{
    struct seen *s = arg;

    FUZZ_CHECK(r->type >= MANIFEST_HEADER && r->type <= MANIFEST_ABORT);
    if (s->n == 0)
        FUZZ_CHECK(r->seq == 0);
    else
        FUZZ_CHECK(r->seq >= s->last_seq + REC_HDR + REC_TRAILER);
    s->last_seq = r->seq;
    switch (r->type) {
    case MANIFEST_HEADER: {
        const struct manifest_header *h = &r->u.header;
        FUZZ_CHECK(h->proto >= MANIFEST_PROTO_CHUNKED
                   && h->proto <= MANIFEST_PROTO_LAST);
        FUZZ_CHECK(strnlen(h->id, sizeof(h->id)) < sizeof(h->id));
        FUZZ_CHECK(strnlen(h->path, sizeof(h->path)) < sizeof(h->path));
        FUZZ_CHECK(strnlen(h->ctype, sizeof(h->ctype)) < sizeof(h->ctype));
        FUZZ_CHECK(strnlen(h->meta, sizeof(h->meta)) < sizeof(h->meta));
        break;
    }
    case MANIFEST_CHUNK:
        FUZZ_CHECK(r->u.chunk.length > 0);
        FUZZ_CHECK(r->u.chunk.offset + r->u.chunk.length > r->u.chunk.offset);
        break;
    case MANIFEST_COMPLETE:
        FUZZ_CHECK(strnlen(r->u.complete.path, sizeof(r->u.complete.path))
                   < sizeof(r->u.complete.path));
        break;
    case MANIFEST_ABORT:
        FUZZ_CHECK(strnlen(r->u.reason, sizeof(r->u.reason))
                   < sizeof(r->u.reason));
        break;
    default:
        break;
    }
    s->last = *r;
    return ++s->n == s->stop_at ? STOPPED : 0;
}

static uint64_t
file_size(const char *name)
{
    struct stat st;

    FUZZ_CHECK(fstatat(sess_fd, name, &st, 0) == 0);
    return (uint64_t)st.st_size;
}

static void
write_file(const char *name, const uint8_t *p, size_t n, uint64_t size)
{
    int fd = openat(sess_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                    0600);

    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(n == 0 || write(fd, p, n) == (ssize_t)n);
    FUZZ_CHECK(ftruncate(fd, (off_t)size) == 0);
    close(fd);
}

static void
check_state(const struct manifest_state *st, const struct manifest_replay *res,
            uint64_t data_size)
{
    FUZZ_CHECK(st->records >= 1 && st->records == res->records);
    FUZZ_CHECK(st->torn == res->torn);
    FUZZ_CHECK(ranges_valid(&st->held));
    FUZZ_CHECK(!(st->complete && st->aborted));
    for (uint32_t i = 0; i < st->held.n; i++) {
        FUZZ_CHECK(st->held.r[i].end <= data_size);
        if (st->size != MANIFEST_SIZE_UNKNOWN)
            FUZZ_CHECK(st->held.r[i].end <= st->size);
    }
    FUZZ_CHECK(st->header.proto >= MANIFEST_PROTO_CHUNKED
               && st->header.proto <= MANIFEST_PROTO_LAST);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct manifest_replay res, res2;
    struct manifest_state *st;
    struct manifest       *m;
    struct seen            s;
    char                   err[256];
    uint64_t               h = fuzz_hash(data, size);
    uint64_t               data_size = (h >> 8) % 65536;
    int                    rc, rc2, e;

    if (size == 0)
        return 0;
    if (staging_fd < 0)
        setup();
    uint8_t *b = (uint8_t *)fuzz_dup(data + 1, size - 1, 0);
    fixup(b, size - 1, data[0] & 3);
    write_file("manifest", b, size - 1, size - 1);
    write_file("data", NULL, 0, data_size);
    free(b);
    FUZZ_CHECK(manifest_open(staging_fd, key, &m, err, sizeof(err)) == 0);

    /* Plain replay. */
    memset(&s, 0, sizeof(s));
    errno = 0;
    rc = manifest_replay(m, 0, on_record, &s, &res, err, sizeof(err));
    e = errno;
    FUZZ_CHECK(rc == 0 || (rc == -1 && e == EBADMSG));
    if (rc == 0) {
        FUZZ_CHECK(res.records == s.n);
        FUZZ_CHECK(res.end + res.torn == size - 1);
    }
    if (rc == 0 && s.n > 0) {           /* fn stops the replay */
        uint32_t k = 1 + (uint32_t)(h % s.n);
        memset(&s, 0, sizeof(s));
        s.stop_at = k;
        FUZZ_CHECK(manifest_replay(m, 0, on_record, &s, NULL, err,
                                   sizeof(err)) == STOPPED && s.n == k);
    }

    /* Load, sometimes re-reading chunk bytes. */
    if ((st = malloc(sizeof(*st))) == NULL)
        abort();
    errno = 0;
    rc2 = manifest_load(m, (h & 1) ? MANIFEST_VERIFY : 0, st, err,
                        sizeof(err));
    e = errno;
    if (rc2 == 0) {
        FUZZ_CHECK(rc == 0);
        check_state(st, &res, data_size);
    } else {
        FUZZ_CHECK(rc2 == -1);
        FUZZ_CHECK(e == EBADMSG || e == ENODATA || e == E2BIG);
        FUZZ_CHECK(strnlen(err, sizeof(err)) > 0);
        FUZZ_CHECK(rc == 0 || e == EBADMSG);
    }
    free(st);

    /* Recovery: cut the torn tail, then nothing is torn. */
    memset(&s, 0, sizeof(s));
    rc2 = manifest_replay(m, MANIFEST_TRUNCATE, on_record, &s, &res2, err,
                          sizeof(err));
    FUZZ_CHECK(rc2 == rc);
    if (rc == 0) {
        FUZZ_CHECK(res2.records == res.records && res2.end == res.end);
        FUZZ_CHECK(file_size("manifest") == res.end);
        memset(&s, 0, sizeof(s));
        FUZZ_CHECK(manifest_replay(m, 0, on_record, &s, &res2, err,
                                   sizeof(err)) == 0);
        FUZZ_CHECK(res2.torn == 0 && res2.records == res.records);

        /* An append lands right after the last good record. */
        FUZZ_CHECK(manifest_append_abort(m, "fuzz", err, sizeof(err)) == 0);
        memset(&s, 0, sizeof(s));
        FUZZ_CHECK(manifest_replay(m, 0, on_record, &s, &res2, err,
                                   sizeof(err)) == 0);
        FUZZ_CHECK(res2.records == res.records + 1 && res2.torn == 0);
        FUZZ_CHECK(s.last.type == MANIFEST_ABORT && s.last.seq == res.end
                   && strcmp(s.last.u.reason, "fuzz") == 0);
    }
    manifest_close(m);
    return 0;
}
