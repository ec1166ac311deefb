/* put_driver: the upload load of `make bench` (tests/bench/run.sh), for the
 * rows wrk cannot drive: a bounded number of uploads (wrk only stops on
 * time, and every upload leaves a file the bench must delete), many large
 * bodies at once, and resumable chunked uploads.
 *
 *   put_driver --port P --file F --prefix T [--secret S] [--conns C]
 *              [--count N] [--seconds D] [--chunk BYTES] [--leaf NAME]
 *
 * Plain (no --chunk): N uploads of F (default 1), each a PUT to a fresh URL
 * /T-<i>/<leaf> (a directory per upload, as XMPP servers issue them), over
 * C keep-alive connections at once, a thread each (default 1). Stops after
 * N uploads or D seconds, whichever comes first.
 * Chunked (--chunk): one upload of F to /T-0/<leaf> as consecutive PUTs of
 * BYTES carrying X-Upload-Session-ID and Content-Range, in order, on one
 * connection (docs/protocol.md, "Chunked uploads with X-Upload-Session-ID").
 * With --secret the URLs carry a v1 signature (hex HMAC-SHA256 of
 * "<path> <size>"); without it they are unsigned (nginx's WebDAV PUT).
 *
 * Prints one line, then exits 0 if every upload got its 201:
 *   DRIVERRESULT uploads=N ok=N failed=N seconds=S bytes=B requests=R
 *                p50_us=.. p99_us=.. max_us=.. status_201=N ...
 * seconds runs from the moment every connection is open to the last answer;
 * the latencies are per request (per chunk when chunked). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define RBUF      16384
#define NSTATUS   600
#define IO_SECS   120       /* a stalled server fails the upload, never hangs */

struct opts {
    const char *host, *file, *prefix, *secret, *leaf;
    int         port, conns;
    long        count;
    double      seconds;
    uint64_t    chunk;
};

struct shared {
    const struct opts *o;
    const char        *body;        /* the file, mapped */
    uint64_t           size;
    atomic_long        next;        /* next upload index to take */
    double             t0;
    pthread_barrier_t  ready;
};

struct conn {
    int    fd;
    size_t len;                     /* unread bytes in buf */
    char   buf[RBUF];
};

struct tally {                      /* one thread's results */
    long      uploads, ok, failed, requests, io_errors;
    uint64_t  bytes;
    long      status[NSTATUS];
    uint32_t *lat_us;               /* one per request */
    long      nlat, cap;
    double    last;                 /* time of its last answer */
};

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- connection ---------------------------------------------------------- */

static int
conn_open(struct conn *c, const struct opts *o)
{
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)o->port) };
    struct timeval     tv = { .tv_sec = IO_SECS };
    int                one = 1;

    c->len = 0;
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        return -1;
    if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void
conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

/* Head and body in as few syscalls as the socket allows. */
static int
send_request(struct conn *c, const char *head, size_t hlen, const char *body,
             uint64_t blen)
{
    struct iovec iov[2] = { { (void *)head, hlen }, { (void *)body, blen } };
    struct iovec *v = iov;
    int           n = blen > 0 ? 2 : 1;
    ssize_t       w;

    while (n > 0) {
        w = writev(c->fd, v, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        while (n > 0 && (size_t)w >= v->iov_len) {
            w -= (ssize_t)v->iov_len;
            v++;
            n--;
        }
        if (n > 0) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int
fill(struct conn *c)
{
    ssize_t r;

    if (c->len == sizeof(c->buf))
        return -1;
    do
        r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return -1;
    c->len += (size_t)r;
    return 0;
}

static void
consume(struct conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* One CRLF-terminated line (for chunk sizes); its length, CRLF included. */
static long
line_end(struct conn *c)
{
    char *p;

    while ((p = memmem(c->buf, c->len, "\r\n", 2)) == NULL)
        if (fill(c) < 0)
            return -1;
    return p - c->buf + 2;
}

static int
skip_bytes(struct conn *c, uint64_t n)
{
    while (n > 0) {
        if (c->len == 0 && fill(c) < 0)
            return -1;
        size_t k = n < c->len ? (size_t)n : c->len;
        consume(c, k);
        n -= k;
    }
    return 0;
}

static int
skip_chunked(struct conn *c)
{
    long     n;
    uint64_t size;

    for (;;) {
        if ((n = line_end(c)) < 0)
            return -1;
        size = strtoull(c->buf, NULL, 16);
        consume(c, (size_t)n);
        if (size == 0)
            break;
        if (skip_bytes(c, size + 2) < 0)
            return -1;
    }
    for (;;) {                      /* trailers, then the empty line */
        if ((n = line_end(c)) < 0)
            return -1;
        consume(c, (size_t)n);
        if (n == 2)
            return 0;
    }
}

/* The value of header name in head (NUL-terminated), or NULL. */
static const char *
header(const char *head, const char *name)
{
    size_t      nl = strlen(name);
    const char *p = strstr(head, "\r\n");

    while (p != NULL && p[2] != '\r') {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            p += nl + 1;
            while (*p == ' ' || *p == '\t')
                p++;
            return p;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* Reads one answer; returns its status, or -1 (the connection is then
 * unusable). *closing is set when the server will close it. */
static int
read_response(struct conn *c, int *closing)
{
    char       *end, head[RBUF + 1];
    const char *v;
    size_t      hlen;
    int         status;

    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
        if (fill(c) < 0)
            return -1;
    hlen = (size_t)(end - c->buf) + 4;
    memcpy(head, c->buf, hlen);
    head[hlen] = '\0';
    consume(c, hlen);
    if (sscanf(head, "HTTP/1.%*d %d", &status) != 1 || status < 100
        || status >= NSTATUS)
        return -1;
    v = header(head, "Connection");
    *closing = v != NULL && strncasecmp(v, "close", 5) == 0;
    if (status < 200)               /* never asked for; skip it */
        return read_response(c, closing);
    if ((v = header(head, "Transfer-Encoding")) != NULL
        && strncasecmp(v, "chunked", 7) == 0)
        return skip_chunked(c) < 0 ? -1 : status;
    if ((v = header(head, "Content-Length")) != NULL)
        return skip_bytes(c, strtoull(v, NULL, 10)) < 0 ? -1 : status;
    if (status == 204 || status == 304)
        return status;
    *closing = 1;                   /* body until close: not kept */
    return status;
}

/* ---- requests ------------------------------------------------------------ */

/* "/path?v=MAC" or "/path" into out. */
static void
target(const struct opts *o, const char *path, uint64_t total, char *out,
       size_t len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int  maclen = 0;
    char          msg[512], hex[2 * EVP_MAX_MD_SIZE + 1];
    int           n;

    if (o->secret == NULL) {
        snprintf(out, len, "/%s", path);
        return;
    }
    n = snprintf(msg, sizeof(msg), "%s %llu", path, (unsigned long long)total);
    HMAC(EVP_sha256(), o->secret, (int)strlen(o->secret),
         (unsigned char *)msg, (size_t)n, mac, &maclen);
    for (unsigned int i = 0; i < maclen; i++)
        sprintf(hex + 2 * i, "%02x", mac[i]);
    snprintf(out, len, "/%s?v=%s", path, hex);
}

static void
record(struct tally *t, double t_start, int status)
{
    t->last = now();
    t->requests++;
    if (status > 0)
        t->status[status]++;
    else
        t->io_errors++;
    if (t->nlat < t->cap)
        t->lat_us[t->nlat++] = (uint32_t)((t->last - t_start) * 1e6);
}

/* One request on c (opened if needed); its status or -1. */
static int
exchange(struct conn *c, const struct opts *o, const char *head, size_t hlen,
         const char *body, uint64_t blen)
{
    int status, closing = 0;

    if (c->fd < 0 && conn_open(c, o) < 0)
        return -1;
    if (send_request(c, head, hlen, body, blen) < 0
        || (status = read_response(c, &closing)) < 0) {
        conn_close(c);
        return -1;
    }
    if (closing)
        conn_close(c);
    return status;
}

static void
one_upload(struct shared *s, struct conn *c, struct tally *t, long i)
{
    char   path[300], tgt[600], head[900];
    double t_start = now();
    int    hlen, status;

    snprintf(path, sizeof(path), "%s-%ld/%s", s->o->prefix, i, s->o->leaf);
    target(s->o, path, s->size, tgt, sizeof(tgt));
    hlen = snprintf(head, sizeof(head), "PUT %s HTTP/1.1\r\nHost: %s\r\n"
                    "Content-Length: %llu\r\n\r\n", tgt, s->o->host,
                    (unsigned long long)s->size);
    status = exchange(c, s->o, head, (size_t)hlen, s->body, s->size);
    record(t, t_start, status);
    t->uploads++;
    t->bytes += s->size;
    if (status == 201)
        t->ok++;
    else
        t->failed++;
}

static void
chunked_upload(struct shared *s, struct conn *c, struct tally *t)
{
    char     path[300], tgt[600], head[1200];
    uint64_t off, n;
    int      hlen, status = -1;

    snprintf(path, sizeof(path), "%s-0/%s", s->o->prefix, s->o->leaf);
    target(s->o, path, s->size, tgt, sizeof(tgt));
    for (off = 0; off < s->size; off += n) {
        double t_start = now();

        n = s->size - off < s->o->chunk ? s->size - off : s->o->chunk;
        hlen = snprintf(head, sizeof(head), "PUT %s HTTP/1.1\r\nHost: %s\r\n"
                        "X-Upload-Session-ID: %s-session\r\n"
                        "Content-Range: bytes %llu-%llu/%llu\r\n"
                        "Content-Length: %llu\r\n\r\n", tgt, s->o->host,
                        s->o->prefix, (unsigned long long)off,
                        (unsigned long long)(off + n - 1),
                        (unsigned long long)s->size, (unsigned long long)n);
        status = exchange(c, s->o, head, (size_t)hlen, s->body + off, n);
        record(t, t_start, status);
        t->bytes += n;
        /* 200: held, not complete yet; anything else ends it. */
        if (status != 200 || off + n == s->size)
            break;
    }
    t->uploads = 1;
    t->ok = status == 201 && off + n == s->size;
    t->failed = !t->ok;
}

struct thread {
    pthread_t      id;
    struct shared *s;
    struct tally   t;
};

static void *
worker(void *arg)
{
    struct thread *th = arg;
    struct shared *s = th->s;
    struct tally  *t = &th->t;
    struct conn   *c = malloc(sizeof(*c));
    double         deadline = 0;
    long           i;

    if (c == NULL)
        abort();
    conn_open(c, s->o);             /* a failure is retried per upload */
    pthread_barrier_wait(&s->ready);
    if (s->o->seconds > 0)
        deadline = now() + s->o->seconds;
    while ((i = atomic_fetch_add(&s->next, 1)) < s->o->count) {
        if (deadline > 0 && now() >= deadline)
            break;
        one_upload(s, c, t, i);
    }
    conn_close(c);
    free(c);
    return NULL;
}

/* ---- results ------------------------------------------------------------- */

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static void
add_tally(struct tally *sum, const struct tally *t)
{
    sum->uploads += t->uploads;
    sum->ok += t->ok;
    sum->failed += t->failed;
    sum->requests += t->requests;
    sum->io_errors += t->io_errors;
    sum->bytes += t->bytes;
    for (int j = 0; j < NSTATUS; j++)
        sum->status[j] += t->status[j];
    memcpy(sum->lat_us + sum->nlat, t->lat_us, t->nlat * sizeof(uint32_t));
    sum->nlat += t->nlat;
    if (t->last > sum->last)
        sum->last = t->last;
}

static void
report(const struct tally *sum, double t0, uint64_t chunk)
{
    long k = sum->nlat;

    qsort(sum->lat_us, (size_t)k, sizeof(uint32_t), cmp_u32);
    printf("DRIVERRESULT uploads=%ld ok=%ld failed=%ld seconds=%.6f "
           "bytes=%llu requests=%ld p50_us=%u p99_us=%u max_us=%u "
           "io_errors=%ld", sum->uploads, sum->ok, sum->failed,
           sum->last > t0 ? sum->last - t0 : 0.0,
           (unsigned long long)sum->bytes, sum->requests,
           k ? sum->lat_us[(k - 1) * 50 / 100] : 0,
           k ? sum->lat_us[(k - 1) * 99 / 100] : 0,
           k ? sum->lat_us[k - 1] : 0, sum->io_errors);
    for (int j = 0; j < NSTATUS; j++)
        if (sum->status[j])
            printf(" status_%d=%ld", j, sum->status[j]);
    if (chunk > 0)
        printf(" chunk=%llu", (unsigned long long)chunk);
    printf("\n");
}

/* ---- main ---------------------------------------------------------------- */

static void
usage(void)
{
    fprintf(stderr, "usage: put_driver --port P --file F --prefix T "
            "[--secret S] [--conns C] [--count N] [--seconds D] "
            "[--chunk BYTES] [--leaf NAME] [--host ADDR]\n");
    exit(2);
}

static void
parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        { "port", 1, 0, 'p' }, { "file", 1, 0, 'f' }, { "prefix", 1, 0, 'x' },
        { "secret", 1, 0, 's' }, { "conns", 1, 0, 'c' },
        { "count", 1, 0, 'n' }, { "seconds", 1, 0, 'd' },
        { "chunk", 1, 0, 'k' }, { "leaf", 1, 0, 'l' }, { "host", 1, 0, 'h' },
        { 0, 0, 0, 0 } };
    int ch;

    *o = (struct opts){ .host = "127.0.0.1", .leaf = "b.bin", .conns = 1,
                        .count = 1 };
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'p': o->port = atoi(optarg); break;
        case 'f': o->file = optarg; break;
        case 'x': o->prefix = optarg; break;
        case 's': o->secret = optarg; break;
        case 'c': o->conns = atoi(optarg); break;
        case 'n': o->count = atol(optarg); break;
        case 'd': o->seconds = atof(optarg); break;
        case 'k': o->chunk = strtoull(optarg, NULL, 10); break;
        case 'l': o->leaf = optarg; break;
        case 'h': o->host = optarg; break;
        default: usage();
        }
    }
    if (optind != argc || o->port <= 0 || o->port > 65535 || !o->file
        || !o->prefix || o->conns < 1 || o->conns > 4096 || o->count < 1
        || o->seconds < 0 || strlen(o->prefix) > 200 || strlen(o->leaf) > 60
        || (o->secret && strlen(o->secret) > 1024))
        usage();
}

static const char *
map_file(const char *path, uint64_t *size)
{
    struct stat st;
    void       *p;
    int         fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0) {
        perror(path);
        exit(1);
    }
    *size = (uint64_t)st.st_size;
    if (st.st_size == 0) {
        close(fd);
        return "";
    }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

static uint32_t *
lat_array(long n)
{
    uint32_t *p = calloc((size_t)n + 1, sizeof(uint32_t));

    if (p == NULL)
        abort();
    return p;
}

static int
run_chunked(struct shared *s, struct tally *sum)
{
    struct conn *c = malloc(sizeof(*c));

    if (c == NULL)
        abort();
    sum->cap = (long)(s->size / s->o->chunk) + 2;
    sum->lat_us = lat_array(sum->cap);
    c->fd = -1;
    s->t0 = now();
    chunked_upload(s, c, sum);
    conn_close(c);
    free(c);
    return 0;
}

static int
run_plain(struct shared *s, struct tally *sum)
{
    int            n = s->o->conns, i;
    struct thread *th = calloc((size_t)n, sizeof(*th));

    if (th == NULL || pthread_barrier_init(&s->ready, NULL, (unsigned)n + 1))
        abort();
    for (i = 0; i < n; i++) {
        th[i].s = s;
        th[i].t.cap = s->o->count;
        th[i].t.lat_us = lat_array(s->o->count);
        if (pthread_create(&th[i].id, NULL, worker, &th[i]) != 0) {
            perror("pthread_create");
            exit(1);
        }
    }
    pthread_barrier_wait(&s->ready);
    s->t0 = now();
    sum->lat_us = lat_array(s->o->count);
    for (i = 0; i < n; i++) {
        pthread_join(th[i].id, NULL);
        add_tally(sum, &th[i].t);
        free(th[i].t.lat_us);
    }
    free(th);
    return 0;
}

int
main(int argc, char **argv)
{
    struct opts   o;
    struct shared s = { 0 };
    struct tally  sum = { 0 };

    parse(argc, argv, &o);
    s.o = &o;
    s.body = map_file(o.file, &s.size);
    if (o.chunk > 0 && s.size == 0)
        usage();
    if (o.chunk > 0)
        run_chunked(&s, &sum);
    else
        run_plain(&s, &sum);
    report(&sum, s.t0, o.chunk);
    free(sum.lat_us);
    return sum.ok == sum.uploads && sum.uploads > 0 ? 0 : 1;
}
