/* log.c: the process's single log sink.
 *
 * The sink is per-process state by nature (it is what fd 2 is to stdio), so it
 * lives here rather than in every context struct. Each line is formatted into
 * one buffer and written with a single write(2), so lines from several workers
 * appending to one O_APPEND file never interleave mid-line. */
#include "lib/util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

enum sink { SINK_STDERR, SINK_FILE, SINK_SYSLOG };

static struct {
    enum sink      sink;
    int            fd;
    enum log_level level;
    char           path[4096];
    char           role[32];
} lg = { SINK_STDERR, 2, LOG_LVL_INFO, "", "master" };

static const char *level_names[] = { "error", "warn", "info", "debug" };

int
log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    return -1;
}

int
log_open(const char *target, enum log_level level, char *err, size_t errlen)
{
    lg.level = level;
    if (target == NULL || *target == '\0' || strcmp(target, "stderr") == 0) {
        lg.sink = SINK_STDERR;
        lg.fd = 2;
        return 0;
    }
    if (strcmp(target, "syslog") == 0) {
        openlog("hmac-file-server", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        lg.sink = SINK_SYSLOG;
        return 0;
    }
    int fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open log file %s: %s", target,
                 strerror(errno));
        return -1;
    }
    if (lg.sink == SINK_FILE && lg.fd > 2)
        close(lg.fd);
    snprintf(lg.path, sizeof(lg.path), "%s", target);
    lg.sink = SINK_FILE;
    lg.fd = fd;
    return 0;
}

int
log_reopen(void)
{
    if (lg.sink != SINK_FILE)
        return 0;
    int fd = open(lg.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    /* dup2 keeps the fd number, so children forked earlier that share it are
     * not affected and a concurrent write goes to one file or the other. */
    dup2(fd, lg.fd);
    close(fd);
    return 0;
}

void
log_set_role(const char *role)
{
    snprintf(lg.role, sizeof(lg.role), "%s", role);
}

void
log_set_level(enum log_level level)
{
    lg.level = level;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > lg.level)
        return;
    int saved = errno;
    char line[2048];
    va_list ap;
    size_t n = 0;

    if (lg.sink != SINK_SYSLOG) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ ",
                              ts.tv_nsec / 1000000);
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, "[%s] %s[%d]: ",
                          level_names[level], lg.role, (int)getpid());
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    n = (m < 0 || n + (size_t)m >= sizeof(line) - 1) ? sizeof(line) - 2
                                                     : n + (size_t)m;
    if (lg.sink == SINK_SYSLOG) {
        static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
        syslog(prio[level], "%s", line);
    } else {
        line[n++] = '\n';
        ssize_t w = write(lg.fd, line, n);
        (void)w;
    }
    errno = saved;
}
