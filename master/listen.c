/* listen.c: binding the configured addresses.
 *
 * Sockets are bound once, by the master, before privileges are dropped, and
 * inherited by every worker; that is what lets a port below 1024 work with
 * an unprivileged user. */
#define _GNU_SOURCE
#include "master/master.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096

static int
bind_one(const struct conf_listen *l, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

    if (inet_pton(AF_INET, l->addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)l->port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, l->addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)l->port);
        sl = sizeof(*s6);
    } else {
        snprintf(err, errlen, "listen %s: not a numeric address", l->addr);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    if (fd < 0)
        goto fail;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ss.ss_family == AF_INET6)   /* "[::]" and "0.0.0.0" may both be listed */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0
        || listen(fd, LISTEN_BACKLOG) < 0)
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "listen %s%s%s:%d: %s",
             ss.ss_family == AF_INET6 ? "[" : "", l->addr,
             ss.ss_family == AF_INET6 ? "]" : "", l->port, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

int
master_listen(struct master *m, char *err, size_t errlen)
{
    for (size_t i = 0; i < m->conf.nlisten; i++) {
        int fd = bind_one(&m->conf.listen[i], err, errlen);
        if (fd < 0) {
            while (m->nlisten > 0)
                close(m->listen_fds[--m->nlisten]);
            return -1;
        }
        m->listen_fds[m->nlisten++] = fd;
    }
    return 0;
}
