/* hmac-upload: command-line client of libhfsclient (docs/hmac-upload.1).
 *
 *   hmac-upload [options] FILE URL          resumable chunked upload
 *   hmac-upload sign --secret-file F --variant v1|v2|v3|token ... URL
 *   hmac-upload get [options] URL [-o FILE] download, resuming with Range */
#define _GNU_SOURCE
#include "hfsclient.h"

#include <curl/curl.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    EXIT_USAGE = 1, EXIT_LOCAL = 2, EXIT_REFUSED = 3, EXIT_GAVE_UP = 4,
    EXIT_DIGEST = 5, EXIT_STATE = 6, EXIT_INTERNAL = 7
};

static int verbose, quiet, bar;
static volatile int stop_signal;

/* SIGINT, SIGTERM: stop cleanly (the library sees the flag within 0.1 s);
 * the session and state file are kept for the next run. */
static void
on_signal(int sig)
{
    stop_signal = sig;
}
static double bar_last;
static uint64_t bar_done0;
static double bar_t0;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
fmt_bytes(char *b, size_t n, double v)
{
    const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(b, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void
on_progress(void *ud, uint64_t done, uint64_t total)
{
    (void)ud;
    if (!bar)
        return;
    double t = now_s();
    if (t - bar_last < 0.1 && done != total)
        return;
    if (bar_t0 == 0) {
        bar_t0 = t;
        bar_done0 = done;
    }
    bar_last = t;
    int pct = total ? (int)(done * 100 / total) : 0, w = 30,
        fill = total ? (int)(done * (uint64_t)w / total) : 0;
    char a[32], b[32], r[32];
    fmt_bytes(a, sizeof(a), (double)done);
    fmt_bytes(b, sizeof(b), (double)total);
    double el = t - bar_t0;
    fmt_bytes(r, sizeof(r), el > 0.2 && done >= bar_done0
                            ? (double)(done - bar_done0) / el : 0);
    fprintf(stderr, "\r[%.*s%*s] %3d%%  %s / %s  %s/s  ", fill,
            "##############################", w - fill, "", pct, a, b, r);
    fflush(stderr);
}

static void
bar_end(void)
{
    if (bar && bar_last > 0)
        fputc('\n', stderr);
    bar_last = 0;
}

static void
on_log(void *ud, enum hfs_log_level lvl, const char *msg)
{
    (void)ud;
    if (quiet || (lvl == HFS_LOG_DEBUG && !verbose) || (!verbose && !bar))
        return;
    if (bar && bar_last > 0)
        fputc('\n', stderr);
    fprintf(stderr, "hmac-upload: %s\n", msg);
}

static int
parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return -1;
    uint64_t m = 1;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': m = 1ull << 10; break;
        case 'm': case 'M': m = 1ull << 20; break;
        case 'g': case 'G': m = 1ull << 30; break;
        default: return -1;
        }
        end++;
        if (*end == 'i')
            end++;
        if (*end == 'B' || *end == 'b')
            end++;
        if (*end)
            return -1;
    }
    if (v > UINT64_MAX / m)
        return -1;
    *out = v * m;
    return 0;
}

static int
parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int
parse_secs(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < 0 || v > 86400)
        return -1;
    *out = v;
    return 0;
}

static int
exit_of(enum hfs_status st)
{
    switch (st) {
    case HFS_OK:         return 0;
    case HFS_E_ARGS:     return EXIT_USAGE;
    case HFS_E_LOCAL:    return EXIT_LOCAL;
    case HFS_E_REFUSED:  return EXIT_REFUSED;
    case HFS_E_GAVE_UP:  return EXIT_GAVE_UP;
    case HFS_E_DIGEST:   return EXIT_DIGEST;
    case HFS_E_STATE:    return EXIT_STATE;
    case HFS_E_CANCELLED: return 128 + (stop_signal ? stop_signal : SIGINT);
    default:             return EXIT_INTERNAL;
    }
}

static void
usage(FILE *f)
{
    fputs("usage: hmac-upload [options] FILE URL\n"
          "       hmac-upload get [options] URL [-o FILE]\n"
          "       hmac-upload sign --secret-file F --variant v1|v2|v3|token\n"
          "                   [--size N | --file F] [--content-type T]\n"
          "                   [--user JID] [--expires T | --ttl S]\n"
          "                   [--prefix P] URL\n"
          "upload options:\n"
          "  -c, --chunk-size SIZE   bytes per request (5M)\n"
          "  -p, --parallel N        chunks at once, 1..4 (1)\n"
          "  -r, --max-retries N     failures in a row before giving up (5)\n"
          "  -d, --retry-delay SEC   first back-off, doubled each time (2)\n"
          "      --max-delay SEC     back-off cap (60)\n"
          "  -s, --state FILE        remember the session; resume from it\n"
          "      --sha256            announce the file's SHA-256\n"
          "      --session-id ID     use this session id\n"
          "      --content-type T    Content-Type of each chunk (v2 URLs)\n"
          "      --limit-rate RATE   bytes/s per transfer (e.g. 1M)\n"
          "      --stall-timeout SEC a transfer with no progress fails (30)\n"
          "  -q, --quiet             only errors\n"
          "  -v, --verbose           every request and retry\n"
          "exit status: 0 done, 1 usage, 2 local file, 3 refused by the\n"
          "server, 4 gave up retrying, 5 SHA-256 mismatch, 6 state file,\n"
          "7 internal error, 128+N stopped by signal N (SIGINT, SIGTERM)\n",
          f);
}

static const struct option up_longopts[] = {
    { "chunk-size",    required_argument, NULL, 'c' },
    { "parallel",      required_argument, NULL, 'p' },
    { "max-retries",   required_argument, NULL, 'r' },
    { "retry-delay",   required_argument, NULL, 'd' },
    { "max-delay",     required_argument, NULL, 'D' },
    { "state",         required_argument, NULL, 's' },
    { "sha256",        no_argument,       NULL, 'S' },
    { "session-id",    required_argument, NULL, 'I' },
    { "content-type",  required_argument, NULL, 'T' },
    { "limit-rate",    required_argument, NULL, 'L' },
    { "stall-timeout", required_argument, NULL, 'W' },
    { "output",        required_argument, NULL, 'o' },
    { "quiet",         no_argument,       NULL, 'q' },
    { "verbose",       no_argument,       NULL, 'v' },
    { "help",          no_argument,       NULL, 'h' },
    { NULL, 0, NULL, 0 }
};

static int
bad(const char *what, const char *v)
{
    fprintf(stderr, "hmac-upload: bad %s '%s'\n", what, v);
    return EXIT_USAGE;
}

/* Upload (get == 0) or download (get == 1). */
static int
transfer(int argc, char **argv, int get)
{
    struct hfs_upload_opts o;
    struct hfs_result res;
    const char *out = NULL;
    long l;
    int c;
    hfs_upload_opts_init(&o);
    o.on_progress = on_progress;
    o.on_log = on_log;
    o.cancel = &stop_signal;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while ((c = getopt_long(argc, argv, "c:p:r:d:s:o:qvh", up_longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'c':
            if (parse_size(optarg, &o.chunk_size) || o.chunk_size == 0)
                return bad("chunk size", optarg);
            break;
        case 'p':
            if (parse_int(optarg, 1, HFS_PARALLEL_MAX, &l))
                return bad("--parallel (1..4)", optarg);
            o.parallel = (int)l;
            break;
        case 'r':
            if (parse_int(optarg, 0, 1000, &l))
                return bad("--max-retries", optarg);
            o.max_retries = (int)l;
            break;
        case 'd':
            if (parse_secs(optarg, &o.retry_delay))
                return bad("--retry-delay", optarg);
            break;
        case 'D':
            if (parse_secs(optarg, &o.max_delay))
                return bad("--max-delay", optarg);
            break;
        case 's': o.state_file = optarg; break;
        case 'S': o.sha256 = 1; break;
        case 'I': o.session_id = optarg; break;
        case 'T': o.content_type = optarg; break;
        case 'L':
            if (parse_size(optarg, &o.max_send_speed))
                return bad("--limit-rate", optarg);
            break;
        case 'W':
            if (parse_int(optarg, 1, 86400, &l))
                return bad("--stall-timeout", optarg);
            o.stall_timeout = l;
            break;
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    bar = !quiet && isatty(2);
    if (get) {
        if (argc - optind != 1) {
            usage(stderr);
            return EXIT_USAGE;
        }
        const char *url = argv[optind];
        char name[1024];
        if (out == NULL) {
            /* The URL's last path segment, as curl -O does. */
            const char *q = url + strcspn(url, "?#");
            const char *s = q;
            while (s > url && s[-1] != '/')
                s--;
            snprintf(name, sizeof(name), "%.*s", (int)(q - s), s);
            const char *host = strstr(url, "://");
            host = host ? host + 3 : url;
            if (name[0] == '\0' || s <= host) {
                fprintf(stderr, "hmac-upload: no file name in the URL; "
                        "use -o FILE\n");
                return EXIT_USAGE;
            }
            out = name;
        }
        enum hfs_status st = hfs_download(url, out, &o, &res);
        bar_end();
        if (st != HFS_OK) {
            fprintf(stderr, "hmac-upload: download of %s failed: %s\n", url,
                    res.message);
            return exit_of(st);
        }
        if (verbose)
            fprintf(stderr, "hmac-upload: saved %s\n", out);
        return 0;
    }
    if (out || argc - optind != 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *file = argv[optind], *url = argv[optind + 1];
    enum hfs_status st = hfs_upload_file(file, url, &o, &res);
    bar_end();
    if (verbose)
        fprintf(stderr, "hmac-upload: session %s, %" PRIu64 " body bytes "
                "sent, %d failed requests%s\n", res.session_id,
                res.bytes_sent, res.failures,
                res.resumed ? ", resumed" : "");
    if (st != HFS_OK) {
        fprintf(stderr, "hmac-upload: upload of %s failed: %s\n", file,
                res.message);
        if (o.state_file && (st == HFS_E_GAVE_UP || st == HFS_E_CANCELLED))
            fprintf(stderr, "hmac-upload: run the same command again to "
                    "resume (state in %s)\n", o.state_file);
        return exit_of(st);
    }
    if (!quiet) {
        size_t n = strcspn(url, "?#");
        printf("%.*s\n", (int)n, url);
    }
    return 0;
}

static const struct option sign_longopts[] = {
    { "secret-file",  required_argument, NULL, 'k' },
    { "variant",      required_argument, NULL, 'V' },
    { "size",         required_argument, NULL, 'n' },
    { "file",         required_argument, NULL, 'f' },
    { "content-type", required_argument, NULL, 'T' },
    { "user",         required_argument, NULL, 'u' },
    { "expires",      required_argument, NULL, 'e' },
    { "ttl",          required_argument, NULL, 't' },
    { "prefix",       required_argument, NULL, 'P' },
    { "help",         no_argument,       NULL, 'h' },
    { NULL, 0, NULL, 0 }
};

static int
sign(int argc, char **argv)
{
    const char *secret_file = NULL, *variant = NULL, *ctype = NULL,
               *user = NULL, *prefix = "/";
    uint64_t size = 0;
    int have_size = 0;
    long long expires = -1, ttl = 3600;
    int c;
    while ((c = getopt_long(argc, argv, "h", sign_longopts, NULL)) != -1) {
        switch (c) {
        case 'k': secret_file = optarg; break;
        case 'V': variant = optarg; break;
        case 'n':
            if (parse_size(optarg, &size))
                return bad("--size", optarg);
            have_size = 1;
            break;
        case 'f': {
            struct stat st;
            if (stat(optarg, &st) != 0) {
                fprintf(stderr, "hmac-upload: %s: %s\n", optarg,
                        strerror(errno));
                return EXIT_LOCAL;
            }
            size = (uint64_t)st.st_size;
            have_size = 1;
            break;
        }
        case 'T': ctype = optarg; break;
        case 'u': user = optarg; break;
        case 'e': {
            long v;
            if (parse_int(optarg, 0, 0x7fffffffffffffffL, &v))
                return bad("--expires", optarg);
            expires = v;
            break;
        }
        case 't': {
            long v;
            if (parse_int(optarg, 0, 100L * 365 * 86400, &v))
                return bad("--ttl", optarg);
            ttl = v;
            break;
        }
        case 'P': prefix = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || secret_file == NULL || variant == NULL) {
        usage(stderr);
        return EXIT_USAGE;
    }
    enum hfs_variant v;
    if (!strcmp(variant, "v1"))
        v = HFS_V1;
    else if (!strcmp(variant, "v2"))
        v = HFS_V2;
    else if (!strcmp(variant, "v3"))
        v = HFS_V3;
    else if (!strcmp(variant, "token"))
        v = HFS_TOKEN;
    else
        return bad("--variant (v1, v2, v3 or token)", variant);
    if (v != HFS_V3 && !have_size) {
        fprintf(stderr, "hmac-upload: %s binds the size: give --size or "
                "--file\n", variant);
        return EXIT_USAGE;
    }
    if (v == HFS_TOKEN && user == NULL) {
        fprintf(stderr, "hmac-upload: token needs --user JID\n");
        return EXIT_USAGE;
    }
    if (expires < 0)
        expires = (long long)time(NULL) + ttl;
    FILE *f = fopen(secret_file, "rb");
    if (f == NULL) {
        fprintf(stderr, "hmac-upload: %s: %s\n", secret_file,
                strerror(errno));
        return EXIT_LOCAL;
    }
    char secret[4096];
    size_t n = fread(secret, 1, sizeof(secret), f);
    fclose(f);
    while (n && (secret[n - 1] == '\n' || secret[n - 1] == '\r'))
        n--;
    if (n == 0) {
        fprintf(stderr, "hmac-upload: %s is empty\n", secret_file);
        return EXIT_LOCAL;
    }
    char out[16384];
    if (hfs_sign_url(v, secret, n, argv[optind], prefix, size, ctype, user,
                     expires, out, sizeof(out)) != 0) {
        fprintf(stderr, "hmac-upload: cannot sign %s: it must be "
                "http(s)://host/PREFIX/path with no query, under --prefix "
                "%s\n", argv[optind], prefix);
        return EXIT_USAGE;
    }
    explicit_bzero(secret, sizeof(secret));
    printf("%s\n", out);
    return 0;
}

int
main(int argc, char **argv)
{
    int rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "hmac-upload: curl_global_init failed\n");
        return EXIT_INTERNAL;
    }
    if (argc > 1 && !strcmp(argv[1], "sign"))
        rc = sign(argc - 1, argv + 1);
    else if (argc > 1 && !strcmp(argv[1], "get"))
        rc = transfer(argc - 1, argv + 1, 1);
    else
        rc = transfer(argc, argv, 0);
    curl_global_cleanup();
    return rc;
}
