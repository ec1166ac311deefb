/* tcp_ceiling: one TCP stream over loopback as fast as this machine carries
 * it: `make bench`'s ceiling for every large-transfer row (no server can
 * receive an upload faster than its bytes cross loopback).
 *
 *   tcp_ceiling [--seconds S] [--bytes N] [--buffer B]
 *
 * A receiver thread accepts one connection on 127.0.0.1 and reads into a
 * B-byte buffer (default 256 KiB, the daemon's receive size) until EOF; the
 * sender writes B-byte buffers for S seconds (default 2) or N bytes,
 * whichever ends first. Prints
 *   TCPRESULT bytes=N seconds=S mbs=R       (MB = 10^6 bytes)
 * timed at the receiver, from the connection to the last byte. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct receiver {
    int      listen_fd;
    size_t   buffer;
    uint64_t got;
    double   first, last;
    int      failed;
};

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
receive(void *arg)
{
    struct receiver *r = arg;
    char            *buf = malloc(r->buffer);
    ssize_t          n;
    int              fd;

    if (buf == NULL || (fd = accept(r->listen_fd, NULL, NULL)) < 0) {
        r->failed = 1;
        free(buf);
        return NULL;
    }
    r->first = now();
    while ((n = recv(fd, buf, r->buffer, 0)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r->failed = 1;
            break;
        }
        r->got += (uint64_t)n;
    }
    r->last = now();
    close(fd);
    free(buf);
    return NULL;
}

static int
send_for(int fd, size_t buffer, double seconds, uint64_t bytes)
{
    char    *buf = calloc(1, buffer);
    double   end = now() + seconds;
    uint64_t sent = 0;
    ssize_t  n;
    unsigned turn = 0;

    if (buf == NULL)
        return -1;
    while (sent < bytes) {
        size_t want = bytes - sent < buffer ? (size_t)(bytes - sent) : buffer;

        n = send(fd, buf, want, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        sent += (uint64_t)n;
        if ((++turn & 63) == 0 && now() >= end)
            break;
    }
    free(buf);
    return n < 0 ? -1 : 0;
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "seconds", 1, 0, 's' }, { "bytes", 1, 0, 'n' },
        { "buffer", 1, 0, 'b' }, { 0, 0, 0, 0 } };
    struct receiver    r = { .buffer = 256 * 1024 };
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t          salen = sizeof(sa);
    double             seconds = 2;
    uint64_t           bytes = UINT64_MAX;
    pthread_t          th;
    int                ch, fd;

    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 's': seconds = atof(optarg); break;
        case 'n': bytes = strtoull(optarg, NULL, 10); break;
        case 'b': r.buffer = (size_t)atol(optarg); break;
        default:
            fprintf(stderr, "usage: tcp_ceiling [--seconds S] [--bytes N] "
                    "[--buffer B]\n");
            return 2;
        }
    }
    if (seconds <= 0 || bytes == 0 || r.buffer < 1 || r.buffer > (64u << 20)) {
        fprintf(stderr, "tcp_ceiling: bad --seconds, --bytes or --buffer\n");
        return 2;
    }
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((r.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0
        || bind(r.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0
        || getsockname(r.listen_fd, (struct sockaddr *)&sa, &salen) < 0
        || listen(r.listen_fd, 1) < 0
        || pthread_create(&th, NULL, receive, &r) != 0) {
        perror("tcp_ceiling: listen");
        return 1;
    }
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0
        || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("tcp_ceiling: connect");
        return 1;
    }
    if (send_for(fd, r.buffer, seconds, bytes) < 0)
        perror("tcp_ceiling: send");
    close(fd);
    pthread_join(th, NULL);
    close(r.listen_fd);
    if (r.failed || r.last <= r.first) {
        fprintf(stderr, "tcp_ceiling: the receiver failed\n");
        return 1;
    }
    printf("TCPRESULT bytes=%llu seconds=%.6f mbs=%.1f\n",
           (unsigned long long)r.got, r.last - r.first,
           (double)r.got / (r.last - r.first) / 1e6);
    return 0;
}
