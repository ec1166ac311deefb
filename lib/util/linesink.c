/* linesink.c: a file written one loop turn at a time, or syslog. */
#define _GNU_SOURCE
#include "lib/util/linesink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BUF_CAP      (16 * LINESINK_LINE_MAX)   /* lines of one loop turn */
#define PATH_CAP     1024
#define SYSLOG_PRI   (23 * 8 + 6)               /* local7.info, as nginx */

struct linesink {
    bool   syslog;
    int    fd;
    char   path[PATH_CAP];                 /* file, or the socket's path */
    time_t sec;                            /* when the stamps were made */
    char   stamp[40];                      /* "05/Dec/2026:07:54:22 +0000" */
    char   syshdr[80];                     /* "<190>Dec  5 07:54:22 tag[pid]: " */
    size_t syshdr_len;
    size_t len;                            /* bytes in buf not yet written */
    char   buf[BUF_CAP];
};

static int
open_sink(const struct linesink *s)
{
    if (!s->syslog)
        return open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, s->path, strlen(s->path) + 1);  /* checked */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int
linesink_open(const char *target, struct linesink **out, char *err,
              size_t errlen)
{
    struct linesink *s;

    *out = NULL;
    if (strcmp(target, "off") == 0)
        return 0;
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        snprintf(err, errlen, "access log: out of memory");
        return -1;
    }
    s->syslog = strncmp(target, "syslog", 6) == 0;
    snprintf(s->path, sizeof(s->path), "%s", !s->syslog ? target
             : target[6] == ':' ? target + 7 : "/dev/log");
    if (s->syslog && strlen(s->path) >= sizeof(((struct sockaddr_un *)0)
                                                ->sun_path)) {
        snprintf(err, errlen, "access log %s: socket path too long", target);
        free(s);
        return -1;
    }
    if ((s->fd = open_sink(s)) < 0) {
        snprintf(err, errlen, s->syslog ? "cannot connect to the syslog "
                 "socket %s: %s" : "cannot open %s: %s", s->path,
                 strerror(errno));
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void
linesink_flush(struct linesink *s)
{
    if (s == NULL || s->len == 0)
        return;
    ssize_t w = write(s->fd, s->buf, s->len);
    (void)w;            /* a full disk must not stop the serving */
    s->len = 0;
}

int
linesink_reopen(struct linesink *s)
{
    if (s == NULL)
        return 0;
    linesink_flush(s);          /* what came before goes to the old file */
    int fd = open_sink(s);
    if (fd < 0)
        return -1;
    /* dup2 keeps the number: a line being written goes to one file or the
     * other, never nowhere. */
    dup2(fd, s->fd);
    close(fd);
    return 0;
}

void
linesink_close(struct linesink *s)
{
    if (s == NULL)
        return;
    linesink_flush(s);
    close(s->fd);
    free(s);
}

static void
stamps(struct linesink *s)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec == s->sec)
        return;
    s->sec = ts.tv_sec;
    gmtime_r(&s->sec, &tm);
    strftime(s->stamp, sizeof(s->stamp), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    if (s->syslog) {
        /* RFC 3164, as syslog(3) sends it: local time, tag[pid]. The pid is
         * looked up here, once a second, in the worker writing. */
        char t[32];
        localtime_r(&s->sec, &tm);
        strftime(t, sizeof(t), "%b %e %H:%M:%S", &tm);
        int n = snprintf(s->syshdr, sizeof(s->syshdr),
                         "<%d>%s hmac-file-server[%d]: ", SYSLOG_PRI, t,
                         (int)getpid());
        s->syshdr_len = n > 0 && (size_t)n < sizeof(s->syshdr) ? (size_t)n
                                                               : 0;
    }
}

const char *
linesink_clf_time(struct linesink *s)
{
    stamps(s);
    return s->stamp;
}

char *
linesink_begin(struct linesink *s)
{
    stamps(s);
    /* Syslog's header goes before the line; a file's newline after it. */
    if (BUF_CAP - s->len < LINESINK_LINE_MAX + s->syshdr_len)
        linesink_flush(s);
    if (s->syslog)
        memcpy(s->buf + s->len, s->syshdr, s->syshdr_len);
    return s->buf + s->len + (s->syslog ? s->syshdr_len : 0);
}

void
linesink_commit(struct linesink *s, size_t n)
{
    if (!s->syslog) {
        s->buf[s->len + n++] = '\n';
        s->len += n;
        return;
    }
    const char *line = s->buf + s->len;
    int flags = MSG_DONTWAIT | MSG_NOSIGNAL;
    n += s->syshdr_len;
    if (send(s->fd, line, n, flags) < 0
        && (errno == ECONNREFUSED || errno == ENOTCONN)
        && linesink_reopen(s) == 0)            /* syslogd restarted */
        (void)send(s->fd, line, n, flags);
}
