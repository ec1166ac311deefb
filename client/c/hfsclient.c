/* hfsclient.c: libhfsclient's transfers (libcurl): the chunked upload
 * session, its status requests, retries, state file, and resumable GET.
 * The protocol is docs/protocol.md "Chunked uploads with X-Upload-Session-ID";
 * the pure arithmetic is in logic.c. */
#define _GNU_SOURCE
#include "hfsclient.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HELD_MAX 1024     /* the daemon reports at most 256 ranges */

struct hdrs {
    long     status;
    char     ranges[8192];
    int      has_ranges;
    char     retry_after[64];
    uint64_t offset, length;
    int      has_offset, has_length;
    char     content_range[128];
    uint64_t content_length;
    int      has_clen;
};

struct up;

struct xfer {
    CURL              *e;
    struct up         *u;
    struct hfs_range   r;
    uint64_t           ulnow;    /* body bytes curl has sent */
    uint64_t           rpos;     /* body bytes curl has read */
    struct hdrs        h;
    char               body[400];
    size_t             blen;
    char               err[CURL_ERROR_SIZE];
    struct curl_slist *hl;
};

struct up {
    const struct hfs_upload_opts *o;
    struct hfs_result            *res;
    const char                   *url;
    int                           fd;
    uint64_t                      total;
    char                          sid[HFS_SESSION_ID_MAX + 1];
    struct hfs_range              held[HELD_MAX];
    int                           nheld;
    struct xfer                   x[HFS_PARALLEL_MAX];
    uint64_t                      last_progress;
    int                           created;  /* the server has the session */
};

static void
logf_(const struct hfs_upload_opts *o, enum hfs_log_level lvl,
      const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    if (o->on_log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    o->on_log(o->userdata, lvl, line);
}

static enum hfs_status
fail(struct hfs_result *res, enum hfs_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof(res->message), fmt, ap);
    va_end(ap);
    res->status = st;
    return st;
}

void
hfs_upload_opts_init(struct hfs_upload_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->chunk_size = HFS_DEFAULT_CHUNK;
    o->parallel = 1;
    o->max_retries = HFS_DEFAULT_RETRIES;
    o->retry_delay = HFS_DEFAULT_DELAY;
    o->max_delay = HFS_DEFAULT_MAX_DELAY;
}

static double
jitter(void)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = (uint32_t)rand();
    return (double)r / (double)UINT32_MAX;
}

static int
cancelled(const struct hfs_upload_opts *o)
{
    return o->cancel && *o->cancel;
}

/* Sleeps s seconds in steps of at most 0.1 s, so a cancel is seen. */
static void
sleep_s(const struct hfs_upload_opts *o, double s)
{
    while (s > 0 && !cancelled(o)) {
        double step = s < 0.1 ? s : 0.1;
        struct timespec ts = { 0, (long)(step * 1e9) };
        nanosleep(&ts, NULL);
        s -= step;
    }
}

/* ---- held ranges -------------------------------------------------------- */

static void
held_add(struct up *u, uint64_t a, uint64_t b)
{
    struct hfs_range tmp[HELD_MAX + 1];
    int n = 0, put = 0;
    if (a >= b)
        return;
    for (int i = 0; i < u->nheld; i++) {
        struct hfs_range r = u->held[i];
        if (r.end < a) {
            tmp[n++] = r;
        } else if (r.start > b) {
            if (!put) {
                tmp[n++] = (struct hfs_range){ a, b };
                put = 1;
            }
            tmp[n++] = r;
        } else {
            if (r.start < a)
                a = r.start;
            if (r.end > b)
                b = r.end;
        }
    }
    if (!put)
        tmp[n++] = (struct hfs_range){ a, b };
    if (n > HELD_MAX)
        return;             /* cannot happen against our daemon; keep old */
    memcpy(u->held, tmp, (size_t)n * sizeof(*tmp));
    u->nheld = n;
}

static uint64_t
held_bytes(const struct up *u)
{
    uint64_t n = 0;
    for (int i = 0; i < u->nheld; i++)
        n += u->held[i].end - u->held[i].start;
    return n;
}

/* Folds what an answer says the server holds into u->held. replace: the
 * answer is a status (HEAD): it is the whole truth. */
static void
held_from(struct up *u, const struct hdrs *h, int replace)
{
    struct hfs_range r[HELD_MAX];
    int n = -1;
    if (h->has_ranges)
        n = hfs_ranges_parse(h->ranges, u->total, r, HELD_MAX);
    if (replace)
        u->nheld = 0;
    if (n > 0) {
        for (int i = 0; i < n; i++)
            held_add(u, r[i].start, r[i].end);
    } else if (h->has_offset && h->offset <= u->total) {
        held_add(u, 0, h->offset);
    }
}

/* Bytes of [a, b) not in u->held. */
static uint64_t
not_held(const struct up *u, uint64_t a, uint64_t b)
{
    uint64_t n = b - a;
    for (int i = 0; i < u->nheld; i++) {
        uint64_t lo = u->held[i].start > a ? u->held[i].start : a,
                 hi = u->held[i].end < b ? u->held[i].end : b;
        if (lo < hi)
            n -= hi - lo;
    }
    return n;
}

/* What the server holds plus what is in flight. A chunk's bytes the server
 * already reported held (another chunk's answer lists what has reached it
 * of the chunks still in flight) count once: counted twice, the sum would
 * drop back when that chunk is answered. */
static void
progress(struct up *u)
{
    uint64_t done = held_bytes(u);
    for (int i = 0; i < HFS_PARALLEL_MAX; i++)
        if (u->x[i].e)
            done += not_held(u, u->x[i].r.start,
                             u->x[i].r.start + u->x[i].ulnow);
    if (done > u->total)
        done = u->total;
    if (u->o->on_progress && done != u->last_progress) {
        u->last_progress = done;
        u->o->on_progress(u->o->userdata, done, u->total);
    }
}

/* ---- curl callbacks ----------------------------------------------------- */

static int
hname(const char *line, size_t len, const char *name, const char **val,
      size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return 0;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    *val = v;
    *vlen = (size_t)(end - v);
    return 1;
}

static void
copyv(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t
on_header(char *line, size_t size, size_t nmemb, void *ud)
{
    struct hdrs *h = ud;
    size_t len = size * nmemb;
    const char *v;
    size_t vl;
    char tmp[32];
    if (len > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new answer (after a 100 Continue): forget the previous one. */
        memset(h, 0, sizeof(*h));
        const char *sp = memchr(line, ' ', len);
        if (sp)
            h->status = strtol(sp + 1, NULL, 10);
    } else if (hname(line, len, "X-Upload-Ranges", &v, &vl)) {
        copyv(h->ranges, sizeof(h->ranges), v, vl);
        h->has_ranges = 1;
    } else if (hname(line, len, "Retry-After", &v, &vl)) {
        copyv(h->retry_after, sizeof(h->retry_after), v, vl);
    } else if (hname(line, len, "Upload-Offset", &v, &vl)) {
        copyv(tmp, sizeof(tmp), v, vl);
        h->offset = strtoull(tmp, NULL, 10);
        h->has_offset = 1;
    } else if (hname(line, len, "Upload-Length", &v, &vl)) {
        copyv(tmp, sizeof(tmp), v, vl);
        h->length = strtoull(tmp, NULL, 10);
        h->has_length = 1;
    } else if (hname(line, len, "Content-Range", &v, &vl)) {
        copyv(h->content_range, sizeof(h->content_range), v, vl);
    } else if (hname(line, len, "Content-Length", &v, &vl)) {
        copyv(tmp, sizeof(tmp), v, vl);
        h->content_length = strtoull(tmp, NULL, 10);
        h->has_clen = 1;
    }
    return len;
}

/* The server's reason, kept short, for messages. */
static size_t
on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * nmemb, room = sizeof(x->body) - 1 - x->blen;
    if (len < room)
        room = len;
    memcpy(x->body + x->blen, p, room);
    x->blen += room;
    x->body[x->blen] = '\0';
    return len;
}

static size_t
on_read(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    uint64_t left = (x->r.end - x->r.start) - x->rpos;
    size_t want = size * nmemb;
    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    ssize_t n = pread(x->u->fd, buf, want, (off_t)(x->r.start + x->rpos));
    if (n <= 0)
        return CURL_READFUNC_ABORT;      /* the file shrank or failed */
    x->rpos += (uint64_t)n;
    return (size_t)n;
}

static int
on_seek(void *ud, curl_off_t off, int origin)
{
    struct xfer *x = ud;
    if (origin != SEEK_SET || off < 0
        || (uint64_t)off > x->r.end - x->r.start)
        return CURL_SEEKFUNC_FAIL;
    x->rpos = (uint64_t)off;
    return CURL_SEEKFUNC_OK;
}

static int
on_xferinfo(void *ud, curl_off_t dlt, curl_off_t dln, curl_off_t ult,
            curl_off_t uln)
{
    struct xfer *x = ud;
    (void)dlt; (void)dln; (void)ult;
    if (cancelled(x->u->o))
        return 1;
    if (uln >= 0 && (uint64_t)uln != x->ulnow) {
        x->ulnow = (uint64_t)uln;
        if (x->ulnow > x->r.end - x->r.start)
            x->ulnow = x->r.end - x->r.start;
        progress(x->u);
    }
    return 0;
}

/* ---- requests ----------------------------------------------------------- */

static void
common_opts(CURL *e, const struct hfs_upload_opts *o, const char *url,
            char *err)
{
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT,
                     o->connect_timeout > 0 ? o->connect_timeout : 15L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                     o->stall_timeout > 0 ? o->stall_timeout : 30L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "libhfsclient/1");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    err[0] = '\0';
}

static struct curl_slist *
session_headers(struct up *u, const struct hfs_range *r)
{
    char line[256];
    struct curl_slist *l = NULL, *t;
#define ADD(...) do { snprintf(line, sizeof(line), __VA_ARGS__);          \
                      t = curl_slist_append(l, line);                     \
                      if (t == NULL) { curl_slist_free_all(l); return NULL; } \
                      l = t; } while (0)
    ADD("X-Upload-Session-ID: %s", u->sid);
    if (r) {
        ADD("Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
            r->start, r->end - 1, u->total);
        if (u->res->sha256[0])
            ADD("X-Content-SHA256: %s", u->res->sha256);
        if (u->o->content_type)
            ADD("Content-Type: %s", u->o->content_type);
        else
            ADD("Content-Type:");   /* no type, as the slot had none */
    }
#undef ADD
    return l;
}

static const char *
reason(const char *body)
{
    return body[0] ? body : "(no text)";
}

static void
trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

/* The status request. Returns 0 with x->h filled, -1 on a transport error
 * (x->err). */
static int
status_head(struct up *u, struct xfer *x)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return -1;
    memset(&x->h, 0, sizeof(x->h));
    x->blen = 0;
    x->body[0] = '\0';
    common_opts(e, u->o, u->url, x->err);
    struct curl_slist *l = session_headers(u, NULL);
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &x->h);
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK && x->err[0] == '\0')
        snprintf(x->err, sizeof(x->err), "%s", curl_easy_strerror(rc));
    curl_easy_cleanup(e);
    curl_slist_free_all(l);
    return rc == CURLE_OK ? 0 : -1;
}

/* Is the file published at the URL without its query? (Used when every
 * byte is held but we never saw the 201: the answer was lost.) */
static int
published(struct up *u)
{
    char plain[8192];
    struct hdrs h;
    char err[CURL_ERROR_SIZE];
    snprintf(plain, sizeof(plain), "%s", u->url);
    char *q = strchr(plain, '?');
    if (q)
        *q = '\0';
    CURL *e = curl_easy_init();
    if (e == NULL)
        return 0;
    memset(&h, 0, sizeof(h));
    common_opts(e, u->o, plain, err);
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &h);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    return rc == CURLE_OK && h.status == 200 && h.has_clen
           && h.content_length == u->total;
}

static int
xfer_start(struct up *u, struct xfer *x, CURLM *m, struct hfs_range r)
{
    memset(&x->h, 0, sizeof(x->h));
    x->r = r;
    x->ulnow = x->rpos = 0;
    x->blen = 0;
    x->body[0] = '\0';
    x->u = u;
    x->e = curl_easy_init();
    x->hl = session_headers(u, &r);
    if (x->e == NULL || x->hl == NULL)
        goto bad;
    common_opts(x->e, u->o, u->url, x->err);
    curl_easy_setopt(x->e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(x->e, CURLOPT_INFILESIZE_LARGE,
                     (curl_off_t)(r.end - r.start));
    curl_easy_setopt(x->e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(x->e, CURLOPT_READDATA, x);
    curl_easy_setopt(x->e, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(x->e, CURLOPT_SEEKDATA, x);
    curl_easy_setopt(x->e, CURLOPT_HTTPHEADER, x->hl);
    curl_easy_setopt(x->e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(x->e, CURLOPT_HEADERDATA, &x->h);
    curl_easy_setopt(x->e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(x->e, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    curl_easy_setopt(x->e, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(x->e, CURLOPT_PRIVATE, x);
    if (u->o->max_send_speed)
        curl_easy_setopt(x->e, CURLOPT_MAX_SEND_SPEED_LARGE,
                         (curl_off_t)u->o->max_send_speed);
    if (curl_multi_add_handle(m, x->e) != CURLM_OK)
        goto bad;
    logf_(u->o, HFS_LOG_DEBUG, "PUT bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
          r.start, r.end - 1, u->total);
    return 0;
bad:
    if (x->e)
        curl_easy_cleanup(x->e);
    curl_slist_free_all(x->hl);
    x->e = NULL;
    x->hl = NULL;
    return -1;
}

static void
xfer_end(struct up *u, struct xfer *x, CURLM *m)
{
    u->res->bytes_sent += x->ulnow;
    curl_multi_remove_handle(m, x->e);
    curl_easy_cleanup(x->e);
    curl_slist_free_all(x->hl);
    x->e = NULL;
    x->hl = NULL;
}

struct round {
    int    failed, final, done, progressed;
    long   retry_after;
    enum hfs_status final_status;
};

/* One round: sends the planned chunks, up to `parallel` at once, until all
 * are sent, one fails (the others in flight still finish), the file is
 * complete (201) or an answer is final. */
static enum hfs_status
run_round(struct up *u, struct hfs_range *plan, int nplan, struct round *rd)
{
    CURLM *m = curl_multi_init();
    int next = 0, active = 0;
    int par = u->o->parallel < 1 ? 1 : u->o->parallel > HFS_PARALLEL_MAX
              ? HFS_PARALLEL_MAX : u->o->parallel;
    if (m == NULL)
        return fail(u->res, HFS_E_INTERNAL, "curl_multi_init failed");
    rd->retry_after = -1;
    for (;;) {
        /* A new session's first chunk goes alone: chunks racing to create
         * it would get 503 "session busy" and wait out its Retry-After. */
        int lim = u->created || u->nheld > 0 ? par : 1;
        for (int i = 0; i < lim && next < nplan && !rd->failed && !rd->final
                        && !rd->done; i++) {
            if (u->x[i].e)
                continue;
            if (xfer_start(u, &u->x[i], m, plan[next]) != 0) {
                curl_multi_cleanup(m);
                return fail(u->res, HFS_E_INTERNAL, "curl setup failed");
            }
            next++;
            active++;
        }
        if (active == 0)
            break;
        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct xfer *x;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode rc = msg->data.result;
            long st = x->h.status;
            u->res->http_status = rc == CURLE_OK ? st : u->res->http_status;
            trim(x->body);
            if (rc != CURLE_OK) {
                u->res->failures++;
                rd->failed = 1;
                snprintf(u->res->message, sizeof(u->res->message),
                         "bytes %" PRIu64 "-%" PRIu64 ": %s", x->r.start,
                         x->r.end - 1, x->err[0] ? x->err
                                                 : curl_easy_strerror(rc));
                logf_(u->o, HFS_LOG_INFO, "%s", u->res->message);
            } else if (st == 200 || st == 201) {
                held_add(u, x->r.start, x->r.end);
                held_from(u, &x->h, 0);
                rd->progressed = 1;
                u->created = 1;
                if (st == 201)
                    rd->done = 1;
            } else if (st == 460) {
                rd->final = 1;
                rd->final_status = HFS_E_DIGEST;
                snprintf(u->res->message, sizeof(u->res->message),
                         "HTTP 460: the server's SHA-256 of the file differs "
                         "from ours (%s); nothing was published",
                         reason(x->body));
            } else if (hfs_status_retryable(st)) {
                u->res->failures++;
                rd->failed = 1;
                long ra = hfs_retry_after(x->h.retry_after, time(NULL));
                if (ra > rd->retry_after && (st == 503 || st == 429))
                    rd->retry_after = ra;
                snprintf(u->res->message, sizeof(u->res->message),
                         "bytes %" PRIu64 "-%" PRIu64 ": HTTP %ld: %s%s%s",
                         x->r.start, x->r.end - 1, st, reason(x->body),
                         x->h.retry_after[0] ? "; Retry-After: " : "",
                         x->h.retry_after);
                logf_(u->o, HFS_LOG_INFO, "%s", u->res->message);
            } else {
                u->res->failures++;
                rd->final = 1;
                rd->final_status = HFS_E_REFUSED;
                snprintf(u->res->message, sizeof(u->res->message),
                         "HTTP %ld: %s", st, reason(x->body));
            }
            xfer_end(u, x, m);
            active--;
            progress(u);
        }
        if (cancelled(u->o) && !rd->done) {
            rd->final = 1;
            rd->final_status = HFS_E_CANCELLED;
            snprintf(u->res->message, sizeof(u->res->message), "cancelled");
        }
        if (rd->final || rd->done) {
            for (int i = 0; i < HFS_PARALLEL_MAX; i++)
                if (u->x[i].e)
                    xfer_end(u, &u->x[i], m);
            break;
        }
        if (running > 0 || active > 0)
            curl_multi_poll(m, NULL, 0, 200, NULL);
    }
    curl_multi_cleanup(m);
    return HFS_OK;
}

/* ---- state file --------------------------------------------------------- */

static int
state_save(const char *path, const char *url, const char *file,
           const struct stat *st, const char *sid, const char *sha)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -1;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "hfs-upload-state 1\nurl %s\nfile %s\nsize %" PRIu64
            "\nmtime %lld.%09ld\nsession %s\nsha256 %s\n", url, file,
            (uint64_t)st->st_size, (long long)st->st_mtim.tv_sec,
            st->st_mtim.tv_nsec, sid, sha[0] ? sha : "-");
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        unlink(tmp);
        return -1;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* 1: loaded (sid, sha filled); 0: no state file; -1: unusable (message). */
static int
state_load(const char *path, const char *url, const struct stat *st,
           char *sid, char *sha, struct hfs_result *res)
{
    FILE *f = fopen(path, "r");
    char line[8192], surl[8192] = "", ssid[256] = "", ssha[80] = "",
         mt[64] = "", want_mt[64];
    uint64_t size = UINT64_MAX;
    int ok = 0;
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        fail(res, HFS_E_STATE, "state file %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *sp = strchr(line, ' ');
        if (sp == NULL)
            continue;
        *sp++ = '\0';
        if (!strcmp(line, "hfs-upload-state") && !strcmp(sp, "1"))
            ok = 1;
        else if (!strcmp(line, "url"))
            snprintf(surl, sizeof(surl), "%s", sp);
        else if (!strcmp(line, "size"))
            size = strtoull(sp, NULL, 10);
        else if (!strcmp(line, "mtime"))
            snprintf(mt, sizeof(mt), "%s", sp);
        else if (!strcmp(line, "session"))
            snprintf(ssid, sizeof(ssid), "%s", sp);
        else if (!strcmp(line, "sha256"))
            snprintf(ssha, sizeof(ssha), "%s", sp);
    }
    fclose(f);
    snprintf(want_mt, sizeof(want_mt), "%lld.%09ld",
             (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
    if (!ok || ssid[0] == '\0' || strlen(ssid) > HFS_SESSION_ID_MAX) {
        fail(res, HFS_E_STATE, "state file %s is not an upload state; "
             "remove it to start over", path);
        return -1;
    }
    if (strcmp(surl, url) != 0) {
        fail(res, HFS_E_STATE, "state file %s belongs to another URL (%s); "
             "remove it to start over", path, surl);
        return -1;
    }
    if (size != (uint64_t)st->st_size || strcmp(mt, want_mt) != 0) {
        fail(res, HFS_E_STATE, "the file changed since state file %s was "
             "written; remove it to start over", path);
        return -1;
    }
    memcpy(sid, ssid, strlen(ssid) + 1);
    if (strlen(ssha) == 64)
        memcpy(sha, ssha, 65);
    return 1;
}

/* ---- the upload --------------------------------------------------------- */

static int
sha256_fd(int fd, char hex[65])
{
    unsigned char buf[1 << 16], md[32];
    unsigned mdlen = 0;
    off_t off = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL || !EVP_DigestInit_ex(c, EVP_sha256(), NULL))
        goto bad;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), off);
        if (n < 0)
            goto bad;
        if (n == 0)
            break;
        if (!EVP_DigestUpdate(c, buf, (size_t)n))
            goto bad;
        off += n;
    }
    if (!EVP_DigestFinal_ex(c, md, &mdlen))
        goto bad;
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
bad:
    EVP_MD_CTX_free(c);
    return -1;
}

static int
isalnum_c(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
           || (c >= 'A' && c <= 'Z');
}

static int
valid_sid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > HFS_SESSION_ID_MAX)
        return 0;
    for (; *s; s++)
        if (!(isalnum_c(*s) || *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

/* One failure more in a row: gives up past max_retries, else waits (the
 * server's Retry-After if it sent one, else the back-off). */
static int
wait_or_give_up(struct up *u, int *streak, long retry_after)
{
    const struct hfs_upload_opts *o = u->o;
    (*streak)++;
    if (*streak > o->max_retries) {
        char m[sizeof(u->res->message)];
        snprintf(m, sizeof(m), "%s", u->res->message);
        fail(u->res, HFS_E_GAVE_UP, "gave up after %d failures in a row; "
             "last: %s", *streak, m);
        return -1;
    }
    double d = retry_after >= 0 ? (double)retry_after
                                : hfs_backoff(*streak, o->retry_delay,
                                              o->max_delay, jitter());
    logf_(o, HFS_LOG_INFO, "retry %d/%d in %.2f s%s", *streak, o->max_retries,
          d, retry_after >= 0 ? " (Retry-After)" : "");
    sleep_s(o, d);
    return 0;
}

enum hfs_status
hfs_upload_file(const char *path, const char *url,
                const struct hfs_upload_opts *opts, struct hfs_result *res)
{
    struct hfs_upload_opts o;
    struct up *u = NULL;
    struct stat st;
    struct hfs_range *plan = NULL;
    enum hfs_status ret;
    int need_status = 0, streak = 0, first_status;

    memset(res, 0, sizeof(*res));
    if (opts)
        o = *opts;
    else
        hfs_upload_opts_init(&o);
    if (o.chunk_size == 0)
        o.chunk_size = HFS_DEFAULT_CHUNK;
    if (o.parallel < 1 || o.parallel > HFS_PARALLEL_MAX || o.max_retries < 0
        || o.retry_delay < 0 || path == NULL || url == NULL
        || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)))
        return fail(res, HFS_E_ARGS, "bad arguments (parallel 1..%d, an "
                    "http(s) URL)", HFS_PARALLEL_MAX);
    if (o.session_id && !valid_sid(o.session_id))
        return fail(res, HFS_E_ARGS, "session id must be 1-128 characters "
                    "of A-Z a-z 0-9 - _ .");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return fail(res, HFS_E_INTERNAL, "out of memory");
    u->o = &o;
    u->res = res;
    u->url = url;
    u->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (u->fd < 0 || fstat(u->fd, &st) != 0) {
        ret = fail(res, HFS_E_LOCAL, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = fail(res, HFS_E_LOCAL, "%s: not a regular file", path);
        goto out;
    }
    u->total = (uint64_t)st.st_size;
    if (u->total == 0) {
        ret = fail(res, HFS_E_ARGS, "%s is empty: send it with a plain PUT",
                   path);
        goto out;
    }

    if (o.state_file) {
        int r = state_load(o.state_file, url, &st, u->sid, res->sha256, res);
        if (r < 0) {
            ret = HFS_E_STATE;
            goto out;
        }
        if (r == 1) {
            need_status = 1;
            logf_(&o, HFS_LOG_INFO, "resuming session %s from %s", u->sid,
                  o.state_file);
        }
    }
    if (u->sid[0] == '\0') {
        if (o.session_id) {
            snprintf(u->sid, sizeof(u->sid), "%s", o.session_id);
            need_status = 1;
        } else {
            unsigned char rnd[16];
            if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
                ret = fail(res, HFS_E_INTERNAL, "getrandom: %s",
                           strerror(errno));
                goto out;
            }
            for (int i = 0; i < 16; i++)
                snprintf(u->sid + 2 * i, 3, "%02x", rnd[i]);
        }
    }
    snprintf(res->session_id, sizeof(res->session_id), "%s", u->sid);
    if (o.sha256 && res->sha256[0] == '\0' && sha256_fd(u->fd, res->sha256)) {
        ret = fail(res, HFS_E_LOCAL, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!o.sha256)
        res->sha256[0] = '\0';
    if (o.state_file
        && state_save(o.state_file, url, path, &st, u->sid, res->sha256)) {
        ret = fail(res, HFS_E_STATE, "cannot write state file %s: %s",
                   o.state_file, strerror(errno));
        goto out;
    }

    first_status = need_status;
    uint64_t maxplan = u->total / o.chunk_size + HELD_MAX + 2;
    plan = calloc((size_t)maxplan, sizeof(*plan));
    if (plan == NULL) {
        ret = fail(res, HFS_E_INTERNAL, "out of memory");
        goto out;
    }
    for (;;) {
        if (cancelled(&o)) {
            ret = fail(res, HFS_E_CANCELLED, "cancelled");
            goto out;
        }
        if (need_status) {
            struct xfer *x = &u->x[0];
            if (status_head(u, x) != 0) {
                u->res->failures++;
                snprintf(res->message, sizeof(res->message), "status: %s",
                         x->err);
                logf_(&o, HFS_LOG_INFO, "%s", res->message);
                if (wait_or_give_up(u, &streak, -1)) {
                    ret = res->status;
                    goto out;
                }
                continue;
            }
            long sst = x->h.status;
            if (sst == 200) {
                uint64_t before = held_bytes(u);
                held_from(u, &x->h, 1);
                logf_(&o, HFS_LOG_DEBUG, "status: %" PRIu64 " of %" PRIu64
                      " bytes held (%s)", held_bytes(u), u->total,
                      x->h.has_ranges ? x->h.ranges : "no ranges");
                if (held_bytes(u) > before)
                    streak = 0;
                if (first_status && held_bytes(u) > 0)
                    res->resumed = 1;
                if (held_bytes(u) > 0)
                    u->created = 1;
            } else if (sst == 404) {
                u->nheld = 0;       /* no such session: start from 0 */
                logf_(&o, HFS_LOG_DEBUG, "status: no session yet");
            } else if (hfs_status_retryable(sst)) {
                u->res->failures++;
                snprintf(res->message, sizeof(res->message),
                         "status: HTTP %ld", sst);
                if (wait_or_give_up(u, &streak, hfs_retry_after(
                                        x->h.retry_after, time(NULL)))) {
                    ret = res->status;
                    goto out;
                }
                continue;
            } else {
                res->http_status = sst;
                ret = fail(res, HFS_E_REFUSED, "status request: HTTP %ld",
                           sst);
                goto out;
            }
            first_status = 0;
            need_status = 0;
        }
        progress(u);
        int n = hfs_plan_chunks(u->held, u->nheld, u->total, o.chunk_size,
                                plan, (int)maxplan);
        if (n == 0) {
            /* Everything is held; the 201 was lost, or publication is
             * still going on. */
            if (published(u)) {
                res->http_status = 201;
                break;
            }
            snprintf(res->message, sizeof(res->message),
                     "every byte is held but the file is not published yet");
            if (wait_or_give_up(u, &streak, -1)) {
                ret = res->status;
                goto out;
            }
            need_status = 1;
            continue;
        }
        struct round rd;
        memset(&rd, 0, sizeof(rd));
        ret = run_round(u, plan, n, &rd);
        if (ret != HFS_OK)
            goto out;
        if (rd.done)
            break;
        if (rd.final) {
            ret = res->status = rd.final_status;
            goto out;
        }
        if (rd.progressed)
            streak = 0;
        if (rd.failed) {
            if (wait_or_give_up(u, &streak, rd.retry_after)) {
                ret = res->status;
                goto out;
            }
            need_status = 1;
        }
    }
    u->nheld = 0;
    held_add(u, 0, u->total);
    progress(u);
    res->status = ret = HFS_OK;
    res->message[0] = '\0';
    if (o.state_file)
        unlink(o.state_file);
out:
    free(plan);
    if (u->fd >= 0)
        close(u->fd);
    free(u);
    return ret;
}

/* ---- download ----------------------------------------------------------- */

struct dl {
    int                           fd;
    uint64_t                      off;       /* bytes in the .part file */
    uint64_t                      start;     /* offset this GET began at */
    int                           decided;   /* status looked at */
    int                           writing;   /* body goes to the file */
    struct hdrs                   h;
    char                          body[400];
    size_t                        blen;
    int                           werr;
    const struct hfs_upload_opts *o;
    uint64_t                      total;
};

static int
dl_xferinfo(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a; (void)b; (void)c; (void)d;
    return cancelled(ud) ? 1 : 0;
}

static size_t
dl_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct dl *d = ud;
    size_t len = size * nmemb;
    if (!d->decided) {
        d->decided = 1;
        if (d->h.status == 200 && d->start > 0) {
            /* Not a range answer: the whole file again, from 0. */
            if (ftruncate(d->fd, 0) != 0) {
                d->werr = errno;
                return 0;
            }
            d->off = 0;
        }
        d->writing = d->h.status == 200 || d->h.status == 206;
        if (d->h.status == 200 && d->h.has_clen)
            d->total = d->h.content_length;
        if (d->h.status == 206) {
            const char *sl = strchr(d->h.content_range, '/');
            if (sl && sl[1] != '*')
                d->total = strtoull(sl + 1, NULL, 10);
        }
    }
    if (!d->writing) {
        size_t room = sizeof(d->body) - 1 - d->blen;
        if (len < room)
            room = len;
        memcpy(d->body + d->blen, p, room);
        d->blen += room;
        d->body[d->blen] = '\0';
        return len;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(d->fd, p + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            d->werr = errno;
            return 0;
        }
        done += (size_t)n;
    }
    d->off += len;
    if (d->o->on_progress)
        d->o->on_progress(d->o->userdata, d->off, d->total);
    return len;
}

enum hfs_status
hfs_download(const char *url, const char *out_path,
             const struct hfs_upload_opts *opts, struct hfs_result *res)
{
    struct hfs_upload_opts o;
    char part[4096], err[CURL_ERROR_SIZE], range[64];
    int streak = 0;
    struct dl d;

    memset(res, 0, sizeof(*res));
    if (opts)
        o = *opts;
    else
        hfs_upload_opts_init(&o);
    if (url == NULL || out_path == NULL
        || snprintf(part, sizeof(part), "%s.part", out_path)
           >= (int)sizeof(part))
        return fail(res, HFS_E_ARGS, "bad arguments");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&d, 0, sizeof(d));
    d.o = &o;
    d.fd = open(part, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (d.fd < 0)
        return fail(res, HFS_E_LOCAL, "%s: %s", part, strerror(errno));
    for (;;) {
        struct stat st;
        if (cancelled(&o)) {
            fail(res, HFS_E_CANCELLED, "cancelled; %s is kept to resume", part);
            break;
        }
        if (fstat(d.fd, &st) != 0) {
            fail(res, HFS_E_LOCAL, "%s: %s", part, strerror(errno));
            break;
        }
        d.off = d.start = (uint64_t)st.st_size;
        d.decided = d.writing = 0;
        d.blen = 0;
        d.body[0] = '\0';
        memset(&d.h, 0, sizeof(d.h));
        CURL *e = curl_easy_init();
        if (e == NULL) {
            fail(res, HFS_E_INTERNAL, "curl_easy_init failed");
            break;
        }
        common_opts(e, &o, url, err);
        if (d.start > 0) {
            snprintf(range, sizeof(range), "%" PRIu64 "-", d.start);
            curl_easy_setopt(e, CURLOPT_RANGE, range);
            logf_(&o, HFS_LOG_INFO, "resuming at byte %" PRIu64, d.start);
        }
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, &d.h);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, dl_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &d);
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, dl_xferinfo);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)&o);
        if (o.max_send_speed)
            curl_easy_setopt(e, CURLOPT_MAX_RECV_SPEED_LARGE,
                             (curl_off_t)o.max_send_speed);
        CURLcode rc = curl_easy_perform(e);
        curl_easy_cleanup(e);
        long s = d.h.status;
        res->bytes_sent += d.off - (d.off >= d.start ? d.start : d.off);
        if (cancelled(&o)) {
            fail(res, HFS_E_CANCELLED, "cancelled; %s is kept to resume", part);
            break;
        }
        if (d.werr) {
            fail(res, HFS_E_LOCAL, "%s: %s", part, strerror(d.werr));
            break;
        }
        if (rc == CURLE_OK)
            res->http_status = s;
        trim(d.body);
        if (rc == CURLE_OK && (s == 200 || s == 206)) {
            if (rename(part, out_path) != 0) {
                fail(res, HFS_E_LOCAL, "rename %s: %s", part, strerror(errno));
                break;
            }
            close(d.fd);
            res->status = HFS_OK;
            return HFS_OK;
        }
        if (rc == CURLE_OK && s == 416 && d.start > 0) {
            /* "bytes *\/N": complete if N is what we have. */
            const char *sl = strchr(d.h.content_range, '/');
            if (sl && strtoull(sl + 1, NULL, 10) == d.start) {
                if (rename(part, out_path) != 0) {
                    fail(res, HFS_E_LOCAL, "rename %s: %s", part,
                         strerror(errno));
                    break;
                }
                close(d.fd);
                res->status = HFS_OK;
                return HFS_OK;
            }
            if (ftruncate(d.fd, 0) != 0) {
                fail(res, HFS_E_LOCAL, "%s: %s", part, strerror(errno));
                break;
            }
            continue;       /* the file changed: start over */
        }
        if (rc == CURLE_OK && !hfs_status_retryable(s)) {
            fail(res, HFS_E_REFUSED, "HTTP %ld: %s", s, reason(d.body));
            unlink(part);
            break;
        }
        res->failures++;
        if (d.off > d.start)
            streak = 0;
        if (rc != CURLE_OK)
            snprintf(res->message, sizeof(res->message), "%s",
                     err[0] ? err : curl_easy_strerror(rc));
        else
            snprintf(res->message, sizeof(res->message), "HTTP %ld: %s", s,
                     reason(d.body));
        logf_(&o, HFS_LOG_INFO, "%s", res->message);
        streak++;
        if (streak > o.max_retries) {
            char m[sizeof(res->message)];
            snprintf(m, sizeof(m), "%s", res->message);
            fail(res, HFS_E_GAVE_UP, "gave up after %d failures in a row; "
                 "last: %s", streak, m);
            break;
        }
        long ra = rc == CURLE_OK ? hfs_retry_after(d.h.retry_after, time(NULL))
                                 : -1;
        double w = ra >= 0 ? (double)ra
                           : hfs_backoff(streak, o.retry_delay, o.max_delay,
                                         jitter());
        logf_(&o, HFS_LOG_INFO, "retry %d/%d in %.2f s", streak,
              o.max_retries, w);
        sleep_s(&o, w);
    }
    close(d.fd);
    return res->status;
}
