/* netmon.c: the monitor process: netlink socket, epoll loop, resync.
 *
 * One epoll set holds the multicast rtnetlink socket, a timerfd for debounce
 * windows and resync retries, a signalfd, and the parent-alive pipe. Dumps
 * run on a second, blocking socket so that their replies never mix with
 * multicast events. */
#include "netmon/netmon.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "lib/util/log.h"
#include "netmon/policy.h"
#include "netmon/rtnl.h"

#define NETMON_GROUPS   (RTMGRP_LINK | RTMGRP_IPV4_IFADDR | \
                         RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | \
                         RTMGRP_IPV6_ROUTE)
/* Dump replies are sized from the reader's buffer, up to 32 KiB, and a
 * NEWLINK for a NIC with many SR-IOV VFs exceeds libmnl's 8 KiB. */
#define NETMON_BUF      (64 * 1024)
/* Following route groups on a router means bursts; the default 208 KiB
 * queue overruns long before the 1 MiB we ask for. */
#define NETMON_RCVBUF   (1024 * 1024)
#define DUMP_ATTEMPTS   5
#define DUMP_TIMEOUT_S  5
#define RESYNC_RETRY_MS 1000

struct netmon {
    const struct conf    *c;
    struct netmon_shared *sh;
    struct policy        *pol;
    struct mnl_socket    *nl;
    int                   ep, tfd, sfd, wake_fd, parent_fd;
    bool                  stop;
    bool                  resync_due;
    uint64_t              resync_at;
    bool                  in_dump;
    bool                  warned_full;
    uint32_t              seq;
    unsigned char        *buf;
};

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
extend_pause(struct netmon *nm, uint64_t now)
{
    int64_t until;

    if (!nm->c->uploadpauseonchange || nm->c->reconnectdelay <= 0)
        return;
    until = (int64_t)now + (int64_t)nm->c->reconnectdelay * 1000;
    /* Single writer: a plain load/compare/store cannot lose an update. */
    if (until > atomic_load(&nm->sh->paused_until_ms))
        atomic_store(&nm->sh->paused_until_ms, until);
}

static void
wake_workers(struct netmon *nm)
{
    uint64_t one = 1;

    if (nm->wake_fd >= 0 && write(nm->wake_fd, &one, sizeof(one)) < 0
        && errno != EAGAIN)
        log_warn("write(wake eventfd): %s", strerror(errno));
}

static void
publish(struct netmon *nm, const struct policy_decision *d, uint64_t now)
{
    struct netmon_shared *sh = nm->sh;

    if (d->verdict == POLICY_IGNORE) {
        if (d->what[0] != '\0')
            log_debug("not relevant: %s", d->what);
        return;
    }
    extend_pause(nm, now);
    if (d->verdict == POLICY_EXTEND) {
        log_debug("%s (inside debounce window)", d->what);
        return;
    }
    netstate_set_last_change(sh, d->what);
    atomic_fetch_add(&sh->changes_total, 1);
    /* Epoch last, with release: a worker that sees it sees the rest. */
    atomic_fetch_add_explicit(&sh->epoch, 1, memory_order_release);
    if (nm->c->uploadpauseonchange)
        log_info("network change: %s; pausing uploads for %d s", d->what,
                 nm->c->reconnectdelay);
    else
        log_info("network change: %s", d->what);
    wake_workers(nm);
}

/* Rate-limited so that a kernel message we cannot parse, or an ENOBUFS
 * storm, costs at most one dump per delay. */
static void
want_resync(struct netmon *nm, uint64_t delay_ms)
{
    if (nm->resync_due)
        return;
    nm->resync_due = true;
    nm->resync_at = now_ms() + delay_ms;
}

/* ---- decoding ---- */

static int
on_msg(const struct nlmsghdr *nlh, void *data)
{
    struct netmon *nm = data;
    struct rtnl_event ev[RTNL_MAX_NEXTHOPS];
    struct policy_decision d;
    uint64_t now = now_ms();
    size_t n;

    /* Older libmnl does not turn this flag into EINTR itself. */
    if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) {
        errno = EINTR;
        return MNL_CB_ERROR;
    }
    if (rtnl_decode(nlh, nlh->nlmsg_len, ev, RTNL_MAX_NEXTHOPS, &n) < 0) {
        log_warn("rtnetlink message type %u: %s%s", nlh->nlmsg_type,
                 strerror(errno), nm->in_dump ? "" : "; will resync");
        /* A dump that cannot be parsed would not parse on retry either. */
        if (!nm->in_dump)
            want_resync(nm, RESYNC_RETRY_MS);
    }
    for (size_t i = 0; i < n; i++) {
        policy_feed(nm->pol, &ev[i], now, &d);
        publish(nm, &d, now);
    }
    if (policy_dropped(nm->pol) > 0 && !nm->warned_full) {
        log_warn("interface table full (%d interfaces, %d addresses): "
                 "some changes go unnoticed", POLICY_MAX_IFACES,
                 POLICY_MAX_ADDRS);
        nm->warned_full = true;
    }
    return MNL_CB_OK;
}

/* Any local process may unicast to our port; only port 0 is the kernel,
 * and a forged DELLINK would otherwise pause every upload. Returns the
 * datagram length, or -1 with errno (EMSGSIZE: truncated). */
static ssize_t
recv_kernel(int fd, void *buf, size_t len)
{
    for (;;) {
        struct sockaddr_nl sa;
        struct iovec iov = { buf, len };
        struct msghdr mh = { .msg_name = &sa, .msg_namelen = sizeof(sa),
                             .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n = recvmsg(fd, &mh, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (mh.msg_namelen != sizeof(sa) || sa.nl_pid != 0)
            continue;
        if (mh.msg_flags & MSG_TRUNC) {
            errno = EMSGSIZE;
            return -1;
        }
        return n;
    }
}

/* ---- multicast events ---- */

static int
events_open(struct netmon *nm)
{
    int fd, sz = NETMON_RCVBUF;

    nm->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (nm->nl == NULL) {
        log_error("netlink socket: %s", strerror(errno));
        return -1;
    }
    fd = mnl_socket_get_fd(nm->nl);
    /* FORCE needs CAP_NET_ADMIN and ignores rmem_max; without it the size
     * is capped by rmem_max, which is still better than the default. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    if (mnl_socket_bind(nm->nl, NETMON_GROUPS, MNL_SOCKET_AUTOPID) < 0) {
        log_error("netlink bind (link, address, route groups): %s",
                  strerror(errno));
        return -1;
    }
    return 0;
}

static void
events_drain(struct netmon *nm)
{
    int fd = mnl_socket_get_fd(nm->nl);

    for (;;) {
        ssize_t n = recv_kernel(fd, nm->buf, NETMON_BUF);
        if (n >= 0) {
            mnl_cb_run(nm->buf, (size_t)n, 0, 0, on_msg, nm);
            continue;
        }
        if (errno == EAGAIN)
            return;
        if (errno != ENOBUFS && errno != EMSGSIZE) {
            log_error("recvmsg(rtnetlink): %s", strerror(errno));
            want_resync(nm, RESYNC_RETRY_MS);
            return;
        }
        /* The queue overflowed (or a message did not fit): events are
         * gone and only a full dump can tell what they said. */
        log_warn("rtnetlink: %s, events lost; resyncing",
                 errno == ENOBUFS ? "receive queue overrun"
                                  : "message truncated");
        want_resync(nm, 0);
    }
}

/* ---- dumps ---- */

static int
dump_one(struct netmon *nm, struct mnl_socket *ds, uint16_t type)
{
    _Alignas(struct nlmsghdr)
        char req[MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct ifinfomsg))];
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
    unsigned seq = ++nm->seq, portid = mnl_socket_get_portid(ds);
    size_t hdr = type == RTM_GETLINK ? sizeof(struct ifinfomsg)
                 : type == RTM_GETADDR ? sizeof(struct ifaddrmsg)
                 : sizeof(struct rtmsg);
    ssize_t n;
    int ret;

    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = seq;
    /* A zeroed full header is family AF_UNSPEC: every family, and what
     * strict-checking kernels (4.20+) expect instead of a bare rtgenmsg. */
    mnl_nlmsg_put_extra_header(nlh, hdr);
    if (mnl_socket_sendto(ds, nlh, nlh->nlmsg_len) < 0)
        return -1;
    do {
        if ((n = recv_kernel(mnl_socket_get_fd(ds), nm->buf, NETMON_BUF)) < 0)
            return -1;
        ret = mnl_cb_run(nm->buf, (size_t)n, seq, portid, on_msg, nm);
    } while (ret > MNL_CB_STOP);
    return ret;
}

static struct mnl_socket *
dump_open(void)
{
    struct timeval tv = { DUMP_TIMEOUT_S, 0 };
    struct mnl_socket *ds = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);

    if (ds == NULL)
        return NULL;
    /* The kernel always answers a dump; the timeout is for the day it
     * does not, so that netmon keeps serving its other fds. */
    if (setsockopt(mnl_socket_get_fd(ds), SOL_SOCKET, SO_RCVTIMEO, &tv,
                   sizeof(tv)) < 0
        || mnl_socket_bind(ds, 0, MNL_SOCKET_AUTOPID) < 0) {
        int e = errno;
        mnl_socket_close(ds);
        errno = e;
        return NULL;
    }
    return ds;
}

/* Links first, so that addresses and routes find their interface known.
 * A fresh socket per attempt: an aborted dump leaves replies queued whose
 * sequence numbers would fail the next attempt. */
static int
dump_all(struct netmon *nm)
{
    static const uint16_t types[] = { RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE };
    struct mnl_socket *ds = dump_open();
    int rc = 0, e;

    if (ds == NULL)
        return -1;
    policy_sync_begin(nm->pol);
    nm->in_dump = true;
    for (size_t i = 0; rc == 0 && i < sizeof(types) / sizeof(types[0]); i++)
        rc = dump_one(nm, ds, types[i]);
    nm->in_dump = false;
    e = errno;
    mnl_socket_close(ds);
    errno = e;
    return rc;
}

static int
resync(struct netmon *nm)
{
    struct policy_decision d;
    uint64_t now;
    int rc = -1;

    for (int attempt = 0; attempt < DUMP_ATTEMPTS; attempt++) {
        if ((rc = dump_all(nm)) == 0 || errno != EINTR)
            break;
        /* NLM_F_DUMP_INTR: the table changed under the dump; redo it. */
        log_debug("rtnetlink dump interrupted, restarting");
    }
    if (rc < 0) {
        log_error("rtnetlink dump: %s", strerror(errno));
        return -1;
    }
    now = now_ms();
    policy_sync_end(nm->pol, now, &d);
    publish(nm, &d, now);
    atomic_fetch_add(&nm->sh->resyncs_total, 1);
    log_debug("full rtnetlink dump done");
    return 0;
}

/* ---- loop ---- */

static void
timer_arm(struct netmon *nm)
{
    uint64_t next = policy_next_deadline(nm->pol);
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    if (nm->resync_due && nm->resync_at < next)
        next = nm->resync_at;
    if (next != UINT64_MAX) {
        /* A zero it_value disarms; an instant in the past fires at once. */
        next = next ? next : 1;
        its.it_value.tv_sec = (time_t)(next / 1000);
        its.it_value.tv_nsec = (long)(next % 1000) * 1000000;
    }
    timerfd_settime(nm->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void
windows_close(struct netmon *nm, uint64_t now)
{
    struct policy_decision d;

    while (policy_poll(nm->pol, now, &d)) {
        if (d.suppressed > 0)
            log_info("%s", d.what);
        else
            log_debug("%s", d.what);
    }
}

static void
on_signal(struct netmon *nm)
{
    struct signalfd_siginfo si;

    while (read(nm->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            log_reopen();
            want_resync(nm, 0);
        } else {
            nm->stop = true;
        }
    }
}

static void
on_parent(struct netmon *nm)
{
    char b[64];
    ssize_t n = read(nm->parent_fd, b, sizeof(b));

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        log_info("master is gone, exiting");
        nm->stop = true;
    }
}

static void
dispatch(struct netmon *nm, int fd)
{
    uint64_t ticks;

    if (fd == nm->sfd)
        on_signal(nm);
    else if (fd == nm->parent_fd)
        on_parent(nm);
    else if (fd == nm->tfd)
        while (read(nm->tfd, &ticks, sizeof(ticks)) > 0)
            ;
    else
        events_drain(nm);
}

static int
loop(struct netmon *nm)
{
    struct epoll_event evs[8];

    while (!nm->stop) {
        uint64_t now = now_ms();
        if (nm->resync_due && now >= nm->resync_at) {
            nm->resync_due = false;
            if (resync(nm) < 0) {
                nm->resync_due = true;
                nm->resync_at = now + RESYNC_RETRY_MS;
            }
        }
        windows_close(nm, now_ms());
        timer_arm(nm);
        int n = epoll_wait(nm->ep, evs, 8, -1);
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait: %s", strerror(errno));
            return -1;
        }
        for (int i = 0; i < n; i++)
            dispatch(nm, evs[i].data.fd);
    }
    return 0;
}

/* ---- setup ---- */

static int
watch(struct netmon *nm, int fd)
{
    struct epoll_event e = { .events = EPOLLIN, .data.fd = fd };

    if (fd >= 0 && epoll_ctl(nm->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
        log_error("epoll_ctl(%d): %s", fd, strerror(errno));
        return -1;
    }
    return 0;
}

static int
setup(struct netmon *nm)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0
        || (nm->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0
        || (nm->tfd = timerfd_create(CLOCK_MONOTONIC,
                                     TFD_NONBLOCK | TFD_CLOEXEC)) < 0
        || (nm->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        log_error("netmon setup: %s", strerror(errno));
        return -1;
    }
    nm->pol = policy_new(nm->c->listen, nm->c->nlisten, NETMON_DEBOUNCE_MS);
    nm->buf = malloc(NETMON_BUF);
    if (nm->pol == NULL || nm->buf == NULL) {
        log_error("netmon setup: out of memory");
        return -1;
    }
    /* Subscribe before the first dump: a change between the two is then
     * queued, not lost. */
    if (events_open(nm) < 0)
        return -1;
    if (watch(nm, nm->sfd) < 0 || watch(nm, nm->tfd) < 0
        || watch(nm, nm->parent_fd) < 0
        || watch(nm, mnl_socket_get_fd(nm->nl)) < 0)
        return -1;
    return resync(nm);
}

static void
teardown(struct netmon *nm)
{
    if (nm->nl != NULL)
        mnl_socket_close(nm->nl);
    if (nm->ep >= 0)
        close(nm->ep);
    if (nm->tfd >= 0)
        close(nm->tfd);
    if (nm->sfd >= 0)
        close(nm->sfd);
    policy_free(nm->pol);
    free(nm->buf);
}

int
netmon_run(const struct conf *c, struct netmon_shared *sh, int wake_fd,
           int parent_alive_fd)
{
    struct netmon nm = {
        .c = c, .sh = sh, .ep = -1, .tfd = -1, .sfd = -1,
        .wake_fd = wake_fd, .parent_fd = parent_alive_fd,
    };
    int rc;

    log_set_role("netmon");
    /* The name lets ps, and the integration harness, tell us from workers;
     * the death signal (SIGTERM, read from the signalfd) backs up the pipe. */
    prctl(PR_SET_NAME, "hfs-netmon");
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (!c->networkchangedetection) {
        log_info("network change detection is off");
        return 0;
    }
    rc = setup(&nm);
    if (rc == 0) {
        log_info("watching links, addresses and default routes "
                 "(%zu listen address%s)", c->nlisten,
                 c->nlisten == 1 ? "" : "es");
        rc = loop(&nm);
    }
    teardown(&nm);
    return rc;
}
