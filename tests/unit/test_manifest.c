/* test_manifest: CRC-32C, the held-ranges set, and the on-disk manifest
 * (round trip, torn tails, bit flips, concurrent appenders, recovery). */
#define _GNU_SOURCE
#include "tests/unit/unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/store/manifest.h"
#include "lib/util/crc32c.h"
#include "lib/util/ranges.h"

/* ---- crc32c ---- */

static void
t_crc_vectors(void)
{
    unsigned char buf[32];

    CU_ASSERT_EQUAL(crc32c(0, "123456789", 9), 0xE3069283);
    CU_ASSERT_EQUAL(crc32c_sw(0, "123456789", 9), 0xE3069283);
    /* RFC 3720 B.4 */
    memset(buf, 0, sizeof(buf));
    CU_ASSERT_EQUAL(crc32c(0, buf, 32), 0x8A9136AA);
    CU_ASSERT_EQUAL(crc32c_sw(0, buf, 32), 0x8A9136AA);
    memset(buf, 0xff, sizeof(buf));
    CU_ASSERT_EQUAL(crc32c(0, buf, 32), 0x62A8AB43);
    CU_ASSERT_EQUAL(crc32c_sw(0, buf, 32), 0x62A8AB43);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    CU_ASSERT_EQUAL(crc32c(0, buf, 32), 0x46DD794E);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)(31 - i);
    CU_ASSERT_EQUAL(crc32c(0, buf, 32), 0x113FDB5C);
    CU_ASSERT_EQUAL(crc32c(0, buf, 0), 0);
}


/* Every length and alignment: hardware and table paths agree, and
 * chaining equals one pass. */
static void
t_crc_paths_agree(void)
{
    unsigned char buf[600];
    int           bad = 0;

    srand(7);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)rand();
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= 520; len++) {
            uint32_t one = crc32c(0, buf + off, len);
            size_t   cut = len / 3;
            if (one != crc32c_sw(0, buf + off, len)
                || one != crc32c(crc32c(0, buf + off, cut), buf + off + cut,
                                 len - cut))
                bad++;
        }
    CU_ASSERT_EQUAL(bad, 0);
}

/* ---- ranges ---- */

static void
t_ranges_merge(void)
{
    struct ranges rs;
    char          text[128];

    ranges_init(&rs);
    CU_ASSERT_EQUAL(ranges_add(&rs, 10, 20), 0);
    CU_ASSERT_EQUAL(ranges_add(&rs, 30, 40), 0);
    CU_ASSERT_EQUAL(rs.n, 2);
    CU_ASSERT_EQUAL(ranges_add(&rs, 20, 30), 0);   /* touches both */
    CU_ASSERT_EQUAL(rs.n, 1);
    CU_ASSERT_EQUAL(ranges_add(&rs, 12, 13), 0);   /* inside */
    CU_ASSERT_EQUAL(ranges_add(&rs, 5, 15), 0);    /* overlaps start */
    CU_ASSERT_EQUAL(ranges_add(&rs, 40, 50), 0);   /* adjacent end */
    CU_ASSERT_EQUAL(ranges_add(&rs, 60, 70), 0);
    CU_ASSERT_EQUAL(ranges_add(&rs, 80, 90), 0);
    CU_ASSERT_EQUAL(ranges_add(&rs, 55, 85), 0);   /* swallows one */
    ranges_format(&rs, text, sizeof(text));
    CU_ASSERT_STRING_EQUAL(text, "5-49,55-89");
    CU_ASSERT_EQUAL(ranges_total(&rs), 45 + 35);
    CU_ASSERT_EQUAL(ranges_prefix(&rs), 0);
    CU_ASSERT_EQUAL(ranges_add(&rs, 0, 5), 0);
    CU_ASSERT_EQUAL(ranges_prefix(&rs), 50);
    CU_ASSERT_EQUAL(ranges_add(&rs, 7, 7), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(ranges_add(&rs, 9, 3), -1);
    CU_ASSERT(ranges_valid(&rs));
}


static void
t_ranges_queries(void)
{
    struct ranges rs;
    struct range  h;

    ranges_init(&rs);
    CU_ASSERT_EQUAL(ranges_hole(&rs, 0, 100, &h), 0);
    CU_ASSERT(h.start == 0 && h.end == 100);
    ranges_add(&rs, 0, 1048576);
    ranges_add(&rs, 2097152, 3145728);
    CU_ASSERT(ranges_covers(&rs, 0, 1048576));
    CU_ASSERT(ranges_covers(&rs, 100, 200));
    CU_ASSERT(!ranges_covers(&rs, 1048575, 1048577));
    CU_ASSERT(ranges_covers(&rs, 5, 5));
    CU_ASSERT(ranges_overlaps(&rs, 1048575, 1048577));
    CU_ASSERT(!ranges_overlaps(&rs, 1048576, 2097152));
    CU_ASSERT(ranges_overlaps(&rs, 2097151, 2097153));
    CU_ASSERT(!ranges_overlaps(&rs, 3145728, 4000000));
    CU_ASSERT_EQUAL(ranges_hole(&rs, 0, 4194304, &h), 0);
    CU_ASSERT(h.start == 1048576 && h.end == 2097152);
    CU_ASSERT_EQUAL(ranges_hole(&rs, 2097152, 4194304, &h), 0);
    CU_ASSERT(h.start == 3145728 && h.end == 4194304);
    CU_ASSERT_EQUAL(ranges_hole(&rs, 1500000, 1600000, &h), 0);
    CU_ASSERT(h.start == 1500000 && h.end == 1600000);
    CU_ASSERT_EQUAL(ranges_hole(&rs, 0, 1048576, &h), -1);
    CU_ASSERT_EQUAL(ranges_hole(&rs, 2097152, 3145728, &h), -1);
}


static void
t_ranges_format(void)
{
    struct ranges rs;
    char          text[64], small[10];
    size_t        need;

    ranges_init(&rs);
    CU_ASSERT_EQUAL(ranges_format(&rs, text, sizeof(text)), 0);
    CU_ASSERT_STRING_EQUAL(text, "");
    ranges_add(&rs, 0, 1048576);
    ranges_add(&rs, 2097152, 3145728);
    need = ranges_format(&rs, text, sizeof(text));
    CU_ASSERT_STRING_EQUAL(text, "0-1048575,2097152-3145727");
    CU_ASSERT_EQUAL(need, strlen(text));
    CU_ASSERT_EQUAL(ranges_format(&rs, small, sizeof(small)), need);
    CU_ASSERT_STRING_EQUAL(small, "0-1048575");
    CU_ASSERT_EQUAL(ranges_format(&rs, small, 4), need);
    CU_ASSERT_STRING_EQUAL(small, "0-1");
}


static void
t_ranges_limit(void)
{
    struct ranges rs, before;

    ranges_init(&rs);
    for (uint64_t i = 0; i < RANGES_MAX; i++)
        CU_ASSERT_EQUAL_FATAL(ranges_add(&rs, 10 * i, 10 * i + 5), 0);
    CU_ASSERT_EQUAL(rs.n, RANGES_MAX);
    before = rs;
    CU_ASSERT_EQUAL(ranges_add(&rs, 100000, 100001), -1);
    CU_ASSERT_EQUAL(errno, E2BIG);
    CU_ASSERT_EQUAL(ranges_add(&rs, 7, 8), -1);    /* a new hole inside */
    CU_ASSERT(memcmp(&rs, &before, sizeof(rs)) == 0);
    CU_ASSERT_EQUAL(ranges_add(&rs, 5, 7), 0);     /* merges: fine */
    CU_ASSERT_EQUAL(ranges_add(&rs, 5, 10), 0);
    CU_ASSERT_EQUAL(rs.n, RANGES_MAX - 1);
    CU_ASSERT(ranges_valid(&rs));
    rs.r[3].end = rs.r[4].start;                   /* touching: invalid */
    CU_ASSERT(!ranges_valid(&rs));
}


/* Against a bitmap, with random adds. */
static void
t_ranges_model(void)
{
    enum { SPAN = 3000 };
    static unsigned char bit[SPAN];
    struct ranges        rs;
    int                  bad = 0;

    srand(11);
    for (int round = 0; round < 20; round++) {
        memset(bit, 0, sizeof(bit));
        ranges_init(&rs);
        for (int k = 0; k < 150; k++) {
            uint64_t a = (uint64_t)(rand() % SPAN);
            uint64_t b = a + 1 + (uint64_t)(rand() % 40);
            uint64_t held = 0, prefix = 0;
            if (b > SPAN)
                b = SPAN;
            if (ranges_add(&rs, a, b) < 0)
                continue;
            memset(bit + a, 1, b - a);
            for (int i = 0; i < SPAN; i++)
                held += bit[i];
            while (prefix < SPAN && bit[prefix])
                prefix++;
            bad += !ranges_valid(&rs) || ranges_total(&rs) != held
                   || ranges_prefix(&rs) != prefix;
            a = (uint64_t)(rand() % SPAN);
            b = a + 1 + (uint64_t)(rand() % 60);
            if (b > SPAN)
                b = SPAN;
            bad += ranges_covers(&rs, a, b) != !memchr(bit + a, 0, b - a);
            bad += ranges_overlaps(&rs, a, b) != !!memchr(bit + a, 1, b - a);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

/* ---- manifest ---- */

static char *dir;
static int   sfd = -1;
static char  err[256];


static int
setup(void)
{
    dir = unit_mkdtemp();
    sfd = open(dir, O_RDONLY | O_DIRECTORY);
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


static void
header(struct manifest_header *h, int proto, uint64_t size)
{
    memset(h, 0, sizeof(*h));
    h->proto = (uint8_t)proto;
    h->mac_variant = 3;
    h->size = size;
    h->chunk_size = 64;
    h->mac_size = size;
    h->mac_expiry = 1700000999;
    h->created = 1700000000;
    h->expires = 1700003600;
    snprintf(h->id, sizeof(h->id), "sess-%d-%llu", proto,
             (unsigned long long)size);
    snprintf(h->path, sizeof(h->path), "abc/def/cat picture.jpg");
    snprintf(h->ctype, sizeof(h->ctype), "image/jpeg");
    snprintf(h->meta, sizeof(h->meta), "filename Y2F0LmpwZw==,is_confidential");
}


static void
key(const struct manifest_header *h, uint8_t k[MANIFEST_KEY_LEN])
{
    manifest_key(h->id, strlen(h->id), h->path, strlen(h->path), k);
}


static void
file_of(const uint8_t k[MANIFEST_KEY_LEN], const char *name, char *out,
        size_t len)
{
    char hex[MANIFEST_KEY_HEXLEN + 1];

    manifest_key_hex(k, hex);
    snprintf(out, len, "%s/%.2s/%s/%s", dir, hex, hex, name);
}


static off_t
size_of(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : -1;
}


/* Writes `len` bytes of pattern at `off` into the data file. */
static uint32_t
fill(struct manifest *m, uint64_t off, size_t len, int seed)
{
    unsigned char buf[4096];

    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(seed * 31 + i);
    CU_ASSERT_FATAL(pwrite(manifest_data_fd(m), buf, len, (off_t)off)
                    == (ssize_t)len);
    return crc32c(0, buf, len);
}


struct collect {
    struct manifest_record r[16];
    int                    n;
};


static int
collect(const struct manifest_record *r, void *arg)
{
    struct collect *c = arg;

    if (c->n < 16)
        c->r[c->n] = *r;
    c->n++;
    return 0;
}


static void
t_roundtrip(void)
{
    struct manifest_header h, hd;
    struct manifest_chunk  c[3];
    struct manifest       *m;
    struct collect        *got = calloc(1, sizeof(*got));
    struct manifest_state *st = calloc(1, sizeof(*st));
    uint8_t                k[MANIFEST_KEY_LEN], kd[MANIFEST_KEY_LEN];
    uint8_t                sha[32];

    header(&h, MANIFEST_PROTO_CHUNKED, 192);
    key(&h, k);
    CU_ASSERT_FATAL(manifest_create(sfd, k, &h, &m, err, sizeof(err)) == 0);
    for (int i = 0; i < 3; i++)
        c[i] = (struct manifest_chunk){ 64 * (uint64_t)(2 - i), 64,
                                        (uint32_t)(3 - i),
                                        fill(m, 64 * (2 - i), 64, i) };
    CU_ASSERT_EQUAL(manifest_append_chunks(m, c, 3, err, sizeof(err)), 0);
    memset(sha, 0xab, sizeof(sha));
    CU_ASSERT_EQUAL(manifest_append_complete(m, sha, "abc/def/cat.jpg", err,
                                             sizeof(err)), 0);
    CU_ASSERT_EQUAL(manifest_replay(m, 0, collect, got, NULL, err,
                                    sizeof(err)), 0);
    CU_ASSERT_FATAL(got->n == 5);
    CU_ASSERT_EQUAL(got->r[0].type, MANIFEST_HEADER);
    CU_ASSERT_EQUAL(got->r[0].seq, 0);
    CU_ASSERT(memcmp(&got->r[0].u.header, &h, sizeof(h)) == 0);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(got->r[1 + i].type, MANIFEST_CHUNK);
        CU_ASSERT(memcmp(&got->r[1 + i].u.chunk, &c[i], sizeof(c[i])) == 0);
        CU_ASSERT(got->r[1 + i].seq > got->r[i].seq);
    }
    CU_ASSERT_EQUAL(got->r[4].type, MANIFEST_COMPLETE);
    CU_ASSERT(memcmp(got->r[4].u.complete.sha256, sha, 32) == 0);
    CU_ASSERT_STRING_EQUAL(got->r[4].u.complete.path, "abc/def/cat.jpg");
    CU_ASSERT_EQUAL(manifest_load(m, MANIFEST_VERIFY, st, err, sizeof(err)),
                    0);
    CU_ASSERT_EQUAL(st->records, 5);
    CU_ASSERT_EQUAL(st->size, 192);
    CU_ASSERT_EQUAL(ranges_prefix(&st->held), 192);
    CU_ASSERT_EQUAL(st->bad_chunks, 0);
    CU_ASSERT(st->complete && !st->aborted);
    CU_ASSERT_STRING_EQUAL(st->final_path, "abc/def/cat.jpg");
    CU_ASSERT_STRING_EQUAL(st->header.meta, h.meta);
    memset(&c[0], 0, sizeof(c[0]));
    CU_ASSERT_EQUAL(manifest_find_chunk(m, 64, 64, &c[0], err, sizeof(err)),
                    0);
    CU_ASSERT_EQUAL(c[0].number, 2);
    CU_ASSERT_EQUAL(c[0].crc, c[1].crc);
    CU_ASSERT_EQUAL(manifest_find_chunk(m, 64, 63, &c[0], err, sizeof(err)),
                    -1);
    CU_ASSERT_EQUAL(errno, ENOENT);
    manifest_close(m);

    /* tus with deferred length: SIZE and ABORT. */
    header(&hd, MANIFEST_PROTO_TUS, MANIFEST_SIZE_UNKNOWN);
    key(&hd, kd);
    CU_ASSERT_FATAL(manifest_create(sfd, kd, &hd, &m, err, sizeof(err)) == 0);
    c[0] = (struct manifest_chunk){ 0, 100, 0, fill(m, 0, 100, 9) };
    CU_ASSERT_EQUAL(manifest_append_chunks(m, c, 1, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(manifest_append_size(m, 150, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(manifest_append_abort(m, "terminated", err, sizeof(err)),
                    0);
    memset(got, 0, sizeof(*got));
    CU_ASSERT_EQUAL(manifest_replay(m, 0, collect, got, NULL, err,
                                    sizeof(err)), 0);
    CU_ASSERT_FATAL(got->n == 4);
    CU_ASSERT_EQUAL(got->r[0].u.header.size, MANIFEST_SIZE_UNKNOWN);
    CU_ASSERT_EQUAL(got->r[2].type, MANIFEST_SIZE);
    CU_ASSERT_EQUAL(got->r[2].u.size, 150);
    CU_ASSERT_EQUAL(got->r[3].type, MANIFEST_ABORT);
    CU_ASSERT_STRING_EQUAL(got->r[3].u.reason, "terminated");
    CU_ASSERT_EQUAL(manifest_load(m, 0, st, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(st->size, 150);
    CU_ASSERT_EQUAL(ranges_total(&st->held), 100);
    CU_ASSERT(st->aborted && !st->complete);
    CU_ASSERT_STRING_EQUAL(st->reason, "terminated");
    manifest_close(m);
    free(got);
    free(st);
}


/* A session with HEADER and three CHUNK records, appended one by one;
 * returns the manifest's bytes and where the last record starts. */
static unsigned char *
three_chunks(uint8_t k[MANIFEST_KEY_LEN], const char *id, size_t *len,
             size_t *last)
{
    struct manifest_header h;
    struct manifest       *m;
    char                   path[4096];
    unsigned char         *bytes;
    int                    fd;

    header(&h, MANIFEST_PROTO_CHUNKED, 300);
    snprintf(h.id, sizeof(h.id), "%s", id);
    key(&h, k);
    CU_ASSERT_FATAL(manifest_create(sfd, k, &h, &m, err, sizeof(err)) == 0);
    file_of(k, "manifest", path, sizeof(path));
    for (int i = 0; i < 3; i++) {
        struct manifest_chunk c = { 100 * (uint64_t)i, 100, (uint32_t)i + 1,
                                    fill(m, 100 * (uint64_t)i, 100, i) };
        *last = (size_t)size_of(path);
        CU_ASSERT_FATAL(manifest_append_chunks(m, &c, 1, err, sizeof(err))
                        == 0);
    }
    manifest_close(m);
    *len = (size_t)size_of(path);
    bytes = malloc(*len);
    fd = open(path, O_RDONLY);
    CU_ASSERT_FATAL(fd >= 0 && read(fd, bytes, *len) == (ssize_t)*len);
    close(fd);
    return bytes;
}


static void
rewrite(const uint8_t k[MANIFEST_KEY_LEN], const unsigned char *bytes,
        size_t len)
{
    char path[4096];
    int  fd;

    file_of(k, "manifest", path, sizeof(path));
    fd = open(path, O_WRONLY | O_TRUNC);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, bytes, len) == (ssize_t)len);
    close(fd);
}


/* Replays with TRUNCATE; returns records seen, checks the file's size. */
static int
replay_cut(const uint8_t k[MANIFEST_KEY_LEN], size_t expect_end,
           size_t expect_torn)
{
    struct manifest        *m;
    struct manifest_replay  res;
    char                    path[4096];
    int                     rc;

    file_of(k, "manifest", path, sizeof(path));
    CU_ASSERT_FATAL(manifest_open(sfd, k, &m, err, sizeof(err)) == 0);
    rc = manifest_replay(m, MANIFEST_TRUNCATE, NULL, NULL, &res, err,
                         sizeof(err));
    manifest_close(m);
    if (rc != 0)
        return -1;
    CU_ASSERT_EQUAL(res.end, expect_end);
    CU_ASSERT_EQUAL(res.torn, expect_torn);
    CU_ASSERT_EQUAL(size_of(path), (off_t)expect_end);
    return (int)res.records;
}


/* Cut the last record at every byte: it is dropped, the file cut back. */
static void
t_torn_tail(void)
{
    uint8_t        k[MANIFEST_KEY_LEN];
    size_t         len, last;
    unsigned char *bytes = three_chunks(k, "torn", &len, &last);
    int            bad = 0;

    for (size_t cut = last; cut < len; cut++) {
        rewrite(k, bytes, cut);
        bad += replay_cut(k, last, cut - last) != 3;
    }
    CU_ASSERT_EQUAL(bad, 0);
    rewrite(k, bytes, len);
    CU_ASSERT_EQUAL(replay_cut(k, len, 0), 4);
    free(bytes);
}


/* A flipped bit anywhere in the last record drops just that record. */
static void
t_bitflip_last(void)
{
    uint8_t        k[MANIFEST_KEY_LEN];
    size_t         len, last;
    unsigned char *bytes = three_chunks(k, "flip-last", &len, &last);
    int            bad = 0;

    for (size_t i = last; i < len; i++) {
        bytes[i] ^= (unsigned char)(1u << (i % 8));
        rewrite(k, bytes, len);
        bad += replay_cut(k, last, len - last) != 3;
        bytes[i] ^= (unsigned char)(1u << (i % 8));
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(bytes);
}


/* A flip in the middle ends the log there, like PostgreSQL's WAL. */
static void
t_bitflip_middle(void)
{
    uint8_t                k[MANIFEST_KEY_LEN];
    size_t                 len, last, rec = 48;   /* CHUNK record size */
    unsigned char         *bytes = three_chunks(k, "flip-mid", &len, &last);
    size_t                 second = last - rec;   /* start of 2nd CHUNK */
    struct manifest       *m;
    struct manifest_state *st = calloc(1, sizeof(*st));

    bytes[second + 30] ^= 0x10;
    rewrite(k, bytes, len);
    CU_ASSERT_EQUAL(replay_cut(k, second, len - second), 2);
    CU_ASSERT_FATAL(manifest_open(sfd, k, &m, err, sizeof(err)) == 0);
    CU_ASSERT_EQUAL(manifest_load(m, 0, st, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(ranges_total(&st->held), 100);
    CU_ASSERT_EQUAL(st->torn, 0);
    manifest_close(m);
    free(st);
    free(bytes);
}


static void
put32le(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}


/* A record whose CRC is right but whose content is not is corruption,
 * not a torn write: an error, and nothing is cut. */
static void
t_corrupt_not_torn(void)
{
    uint8_t        k[MANIFEST_KEY_LEN];
    size_t         len, last;
    unsigned char *bytes = three_chunks(k, "corrupt", &len, &last);
    char           path[4096];

    file_of(k, "manifest", path, sizeof(path));
    bytes[last + 4] = 2;                           /* version */
    put32le(bytes + len - 4, crc32c(0, bytes + last, len - last - 4));
    rewrite(k, bytes, len);
    CU_ASSERT_EQUAL(replay_cut(k, 0, 0), -1);
    CU_ASSERT_EQUAL(errno, EBADMSG);
    CU_ASSERT_EQUAL(size_of(path), (off_t)len);
    bytes[last + 4] = 1;
    bytes[last + 12] ^= 1;                         /* seq != offset */
    put32le(bytes + len - 4, crc32c(0, bytes + last, len - last - 4));
    rewrite(k, bytes, len);
    CU_ASSERT_EQUAL(replay_cut(k, 0, 0), -1);
    CU_ASSERT_EQUAL(errno, EBADMSG);
    free(bytes);
}


/* A writer killed inside write() leaves a torn record; the next append
 * (even through a handle opened before) cuts it rather than writing
 * behind it, so no acknowledged record is ever stranded. */
static void
t_dead_writer_tail(void)
{
    uint8_t               k[MANIFEST_KEY_LEN];
    size_t                len, last;
    unsigned char        *bytes = three_chunks(k, "dead", &len, &last);
    struct manifest      *old, *fresh;
    struct manifest_chunk c = { 300, 1, 0, 0 };
    char                  path[4096], zeros[40] = { 0 };
    int                   fd;

    CU_ASSERT_FATAL(manifest_open(sfd, k, &old, err, sizeof(err)) == 0);
    c.crc = crc32c(0, "x", 1);
    /* Let `old` learn the end of the log first. */
    CU_ASSERT_EQUAL(manifest_append_chunks(old, &c, 1, err, sizeof(err)), 0);
    file_of(k, "manifest", path, sizeof(path));
    len = (size_t)size_of(path);
    fd = open(path, O_WRONLY | O_APPEND);
    CU_ASSERT_FATAL(write(fd, bytes + last, 30) == 30);
    close(fd);
    c.offset = 301;
    CU_ASSERT_EQUAL(manifest_append_chunks(old, &c, 1, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(replay_cut(k, len + 48, 0), 6);
    /* Longer than the record that replaces it: must be cut, not just
     * overwritten. */
    fd = open(path, O_WRONLY | O_APPEND);
    CU_ASSERT_FATAL(write(fd, bytes + last, 47) == 47);
    CU_ASSERT_FATAL(write(fd, zeros, sizeof(zeros)) == sizeof(zeros));
    close(fd);
    CU_ASSERT_FATAL(manifest_open(sfd, k, &fresh, err, sizeof(err)) == 0);
    c.offset = 302;
    CU_ASSERT_EQUAL(manifest_append_chunks(fresh, &c, 1, err, sizeof(err)),
                    0);
    CU_ASSERT_EQUAL(replay_cut(k, len + 96, 0), 7);
    manifest_close(old);
    manifest_close(fresh);
    free(bytes);
}


/* Two processes appending to one manifest at once: every record lands
 * whole and in a valid position. */
static void
t_concurrent_appends(void)
{
    struct manifest_header h;
    struct manifest       *m;
    uint8_t                k[MANIFEST_KEY_LEN];
    char                   path[4096];
    size_t                 start;
    pid_t                  kids[2];
    int                    st;

    header(&h, MANIFEST_PROTO_CHUNKED, 1000);
    snprintf(h.id, sizeof(h.id), "parallel");
    key(&h, k);
    CU_ASSERT_FATAL(manifest_create(sfd, k, &h, &m, err, sizeof(err)) == 0);
    manifest_close(m);
    file_of(k, "manifest", path, sizeof(path));
    start = (size_t)size_of(path);
    for (int w = 0; w < 2; w++) {
        kids[w] = fork();
        CU_ASSERT_FATAL(kids[w] >= 0);
        if (kids[w] == 0) {
            struct manifest *mine;
            if (manifest_open(sfd, k, &mine, NULL, 0) < 0)
                _exit(2);
            for (uint64_t i = 0; i < 40; i++) {
                struct manifest_chunk c = { 2 * i + (uint64_t)w, 1, 0, 0 };
                if (manifest_append_chunks(mine, &c, 1, NULL, 0) < 0)
                    _exit(1);
            }
            _exit(0);
        }
    }
    for (int w = 0; w < 2; w++) {
        CU_ASSERT_FATAL(waitpid(kids[w], &st, 0) == kids[w]);
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CU_ASSERT_EQUAL(replay_cut(k, start + 48 * 80, 0), 81);
}


static void
t_load_checks(void)
{
    struct manifest_header h;
    struct manifest       *m;
    struct manifest_state *st = calloc(1, sizeof(*st));
    struct manifest_chunk  c[3];
    uint8_t                k[MANIFEST_KEY_LEN];
    char                   path[4096];

    /* Deferred size: data not preallocated, so a record past the data's
     * end is dropped, and with VERIFY so is one with a wrong CRC. */
    header(&h, MANIFEST_PROTO_TUS, MANIFEST_SIZE_UNKNOWN);
    snprintf(h.id, sizeof(h.id), "checks");
    key(&h, k);
    CU_ASSERT_FATAL(manifest_create(sfd, k, &h, &m, err, sizeof(err)) == 0);
    c[0] = (struct manifest_chunk){ 0, 100, 1, fill(m, 0, 100, 1) };
    c[1] = (struct manifest_chunk){ 100, 100, 2, fill(m, 100, 100, 2) ^ 1 };
    c[2] = (struct manifest_chunk){ 200, 100, 3, 0 };  /* never written */
    CU_ASSERT_EQUAL(manifest_append_chunks(m, c, 3, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(manifest_load(m, 0, st, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(ranges_total(&st->held), 200);
    CU_ASSERT_EQUAL(st->bad_chunks, 1);
    CU_ASSERT_EQUAL(manifest_load(m, MANIFEST_VERIFY, st, err, sizeof(err)),
                    0);
    CU_ASSERT_EQUAL(ranges_total(&st->held), 100);
    CU_ASSERT_EQUAL(st->bad_chunks, 2);
    /* SIZE below held bytes contradicts the log. */
    CU_ASSERT_EQUAL(manifest_append_size(m, 150, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(manifest_load(m, 0, st, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, EBADMSG);
    manifest_close(m);

    /* Created but HEADER never durable: ENODATA, safe to remove. */
    file_of(k, "manifest", path, sizeof(path));
    CU_ASSERT_EQUAL(truncate(path, 10), 0);
    CU_ASSERT_FATAL(manifest_open(sfd, k, &m, err, sizeof(err)) == 0);
    CU_ASSERT_EQUAL(manifest_load(m, 0, st, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, ENODATA);
    manifest_close(m);
    free(st);
}


/* Published (the data name consumed) before COMPLETE was written: the
 * session no longer opens, and recovery removes it. */
static void
t_published(void)
{
    uint8_t        k[MANIFEST_KEY_LEN];
    size_t         len, last;
    unsigned char *bytes = three_chunks(k, "published", &len, &last);
    struct manifest *m;
    char           from[4096], to[4096];

    file_of(k, "data", from, sizeof(from));
    snprintf(to, sizeof(to), "%s/final.bin", dir);
    CU_ASSERT_FATAL(rename(from, to) == 0);
    CU_ASSERT_EQUAL(manifest_open(sfd, k, &m, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, ENOENT);
    CU_ASSERT_EQUAL(manifest_remove(sfd, k, err, sizeof(err)), 0);
    file_of(k, "", from, sizeof(from));
    CU_ASSERT_EQUAL(size_of(from), -1);
    CU_ASSERT_EQUAL(size_of(to), 300);
    free(bytes);
}


struct seen {
    uint8_t keys[8][MANIFEST_KEY_LEN];
    int     n;
};


static int
seen_key(const uint8_t k[MANIFEST_KEY_LEN], void *arg)
{
    struct seen *s = arg;

    if (s->n < 8)
        memcpy(s->keys[s->n], k, MANIFEST_KEY_LEN);
    s->n++;
    return 0;
}


static int
has(const struct seen *s, const uint8_t k[MANIFEST_KEY_LEN])
{
    for (int i = 0; i < s->n && i < 8; i++)
        if (memcmp(s->keys[i], k, MANIFEST_KEY_LEN) == 0)
            return 1;
    return 0;
}


static void
t_remove_foreach(void)
{
    struct manifest_header h;
    struct manifest       *m;
    struct seen            s;
    uint8_t                a[MANIFEST_KEY_LEN], b[MANIFEST_KEY_LEN];
    char                   path[4096];
    int                    sub;

    /* A staging area of its own, with some litter in it. */
    snprintf(path, sizeof(path), "%s/own", dir);
    CU_ASSERT_FATAL(mkdir(path, 0700) == 0);
    sub = open(path, O_RDONLY | O_DIRECTORY);
    snprintf(path, sizeof(path), "%s/own/zz", dir);
    CU_ASSERT(mkdir(path, 0700) == 0);
    snprintf(path, sizeof(path), "%s/own/ab", dir);
    CU_ASSERT(mkdir(path, 0700) == 0);
    snprintf(path, sizeof(path), "%s/own/ab/not-a-key", dir);
    CU_ASSERT(mkdir(path, 0700) == 0);
    header(&h, MANIFEST_PROTO_PUT, 10);
    snprintf(h.id, sizeof(h.id), "one");
    key(&h, a);
    CU_ASSERT_FATAL(manifest_create(sub, a, &h, &m, err, sizeof(err)) == 0);
    manifest_close(m);
    CU_ASSERT_EQUAL(manifest_create(sub, a, &h, &m, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, EEXIST);
    snprintf(h.id, sizeof(h.id), "two");
    key(&h, b);
    CU_ASSERT_FATAL(manifest_create(sub, b, &h, &m, err, sizeof(err)) == 0);
    manifest_close(m);
    memset(&s, 0, sizeof(s));
    CU_ASSERT_EQUAL(manifest_foreach(sub, seen_key, &s, err, sizeof(err)), 0);
    CU_ASSERT(s.n == 2 && has(&s, a) && has(&s, b));
    CU_ASSERT_EQUAL(manifest_remove(sub, a, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(manifest_remove(sub, a, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(manifest_open(sub, a, &m, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, ENOENT);
    memset(&s, 0, sizeof(s));
    CU_ASSERT_EQUAL(manifest_foreach(sub, seen_key, &s, err, sizeof(err)), 0);
    CU_ASSERT(s.n == 1 && has(&s, b));
    close(sub);
}


static void
t_limits(void)
{
    struct manifest_header h;
    struct manifest       *m = NULL;
    struct manifest_chunk  c = { 0, 1, 0, 0 };
    uint8_t                k[MANIFEST_KEY_LEN];
    char                   path[4096];

    header(&h, MANIFEST_PROTO_PUT, 10);
    snprintf(h.id, sizeof(h.id), "limits");
    memset(h.meta, 'm', MANIFEST_META_MAX + 1);    /* no terminator in cap */
    h.meta[MANIFEST_META_MAX] = '\0';
    key(&h, k);
    CU_ASSERT_FATAL(manifest_create(sfd, k, &h, &m, err, sizeof(err)) == 0);
    CU_ASSERT_EQUAL(manifest_append_chunks(m, &c, 0, err, sizeof(err)), -1);
    c.length = 0;
    CU_ASSERT_EQUAL(manifest_append_chunks(m, &c, 1, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    manifest_close(m);
    CU_ASSERT_EQUAL(manifest_remove(sfd, k, err, sizeof(err)), 0);
    /* A field one byte over its cap, or a bad protocol: refused, and
     * nothing left behind. */
    memset(h.ctype, 'c', sizeof(h.ctype));
    CU_ASSERT_EQUAL(manifest_create(sfd, k, &h, &m, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    file_of(k, "", path, sizeof(path));
    CU_ASSERT_EQUAL(size_of(path), -1);
    h.ctype[0] = '\0';
    h.proto = 9;
    CU_ASSERT_EQUAL(manifest_create(sfd, k, &h, &m, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(size_of(path), -1);
}


static CU_TestInfo crc_tests[] = {
    { "test vectors (RFC 3720 B.4)", t_crc_vectors },
    { "hardware and table paths agree", t_crc_paths_agree },
    CU_TEST_INFO_NULL
};

static CU_TestInfo ranges_tests[] = {
    { "merge", t_ranges_merge },
    { "covers, overlaps, holes", t_ranges_queries },
    { "format", t_ranges_format },
    { "limit", t_ranges_limit },
    { "random adds against a bitmap", t_ranges_model },
    CU_TEST_INFO_NULL
};

/* tus concatenation in the HEADER: a partial's flag, a final's list of
 * partials, round trip (the longest list too). */
static void
t_concat_header(void)
{
    struct manifest_state *st = calloc(1, sizeof(*st));
    struct manifest_header h;
    struct manifest       *m;
    uint8_t                k[MANIFEST_KEY_LEN];

    for (int kind = MANIFEST_CONCAT_NONE; kind <= MANIFEST_CONCAT_FINAL;
         kind++) {
        header(&h, MANIFEST_PROTO_TUS, 1000 + (uint64_t)kind);
        h.concat = (uint8_t)kind;
        if (kind == MANIFEST_CONCAT_FINAL)
            memset(h.parts, 'a', MANIFEST_PARTS_MAX);    /* the longest */
        key(&h, k);
        CU_ASSERT_FATAL(manifest_create(sfd, k, &h, &m, err,
                                        sizeof(err)) == 0);
        CU_ASSERT_EQUAL(manifest_load(m, 0, st, err, sizeof(err)), 0);
        CU_ASSERT(memcmp(&st->header, &h, sizeof(h)) == 0);
        manifest_close(m);
        CU_ASSERT_EQUAL(manifest_remove(sfd, k, err, sizeof(err)), 0);
    }
    free(st);
}

static CU_TestInfo manifest_tests[] = {
    { "tus concatenation in the HEADER", t_concat_header },
    { "round trip of every record type", t_roundtrip },
    { "torn tail cut at every byte", t_torn_tail },
    { "bit flip in the last record", t_bitflip_last },
    { "bit flip in the middle stops replay", t_bitflip_middle },
    { "good CRC, bad content: error", t_corrupt_not_torn },
    { "dead writer's torn record is cut", t_dead_writer_tail },
    { "two processes append at once", t_concurrent_appends },
    { "load: bounds, VERIFY, SIZE, no header", t_load_checks },
    { "data published before COMPLETE", t_published },
    { "remove, foreach, EEXIST", t_remove_foreach },
    { "limits", t_limits },
    CU_TEST_INFO_NULL
};

UNIT_SUITE("crc32c", NULL, NULL, crc_tests);
UNIT_SUITE("ranges", NULL, NULL, ranges_tests);
UNIT_SUITE("manifest", setup, teardown, manifest_tests);
