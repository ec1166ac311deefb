/* test_netmon.c: the real netmon loop against a real kernel, inside a
 * private network namespace with veth pairs.
 *
 * Unprivileged runs use a user namespace too (what `unshare -rn` does). When
 * neither works the test says why and passes, unless we are root: CI runs as
 * root and must not skip silently. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* unshare, pipe2 */
#endif
#include "tests/unit/unit.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "lib/util/log.h"
#include "netmon/netmon.h"

#define RES_PASS 0
#define RES_FAIL 1
#define RES_SKIP 2

struct result {
    int  code;
    char msg[256];
};

static int
say(struct result *r, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    return r->code = code;
}

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n = -1;

    if (fd >= 0) {
        n = write(fd, text, strlen(text));
        close(fd);
    }
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* As root a plain network namespace will do (and is all some container
 * runtimes allow); otherwise map ourselves to root in a user namespace so
 * that `ip` keeps CAP_NET_ADMIN across exec. */
static int
enter_netns(struct result *r)
{
    char map[64];
    uid_t uid = getuid();
    gid_t gid = getgid();

    if (geteuid() == 0 && unshare(CLONE_NEWNET) == 0)
        return 0;
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0)
        return say(r, RES_SKIP, "unshare(CLONE_NEWUSER|CLONE_NEWNET): %s",
                   strerror(errno));
    snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
    if (write_file("/proc/self/setgroups", "deny") < 0
        || write_file("/proc/self/uid_map", map) < 0)
        return say(r, RES_SKIP, "uid_map: %s", strerror(errno));
    snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
    if (write_file("/proc/self/gid_map", map) < 0)
        return say(r, RES_SKIP, "gid_map: %s", strerror(errno));
    return 0;
}

static bool
if_running(const char *name)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc;

    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    rc = fd >= 0 ? ioctl(fd, SIOCGIFFLAGS, &ifr) : -1;
    if (fd >= 0)
        close(fd);
    return rc == 0 && (ifr.ifr_flags & IFF_RUNNING);
}

/* Polls cond every 10 ms for up to ms milliseconds. */
#define WAIT_FOR(cond, ms)                                              \
    ({ int64_t t_end_ = mono_ms() + (ms);                               \
       bool ok_;                                                        \
       while (!(ok_ = (cond)) && mono_ms() < t_end_)                    \
           usleep(10000);                                               \
       ok_; })

static int
make_links(struct result *r)
{
    /* veth0 and veth4 hold listen addresses; veth2 is an unrelated
     * neighbour. Peers up so that veth0/veth2 are RUNNING before netmon
     * starts (veth4 stays down: an IPv4 address survives that). */
    const char *cmd =
        "ip link add veth0 type veth peer name veth1 && "
        "ip link add veth2 type veth peer name veth3 && "
        "ip link add veth4 type veth peer name veth5 && "
        "ip addr add 10.99.0.1/24 dev veth0 && "
        "ip addr add 10.98.0.1/24 dev veth2 && "
        "ip addr add 10.97.0.1/24 dev veth4 && "
        "ip link set veth0 up && ip link set veth1 up && "
        "ip link set veth2 up && ip link set veth3 up";

    if (system(cmd) != 0)
        return say(r, RES_SKIP, "could not create veth pairs with ip(8)");
    if (!WAIT_FOR(if_running("veth0") && if_running("veth2"), 2000))
        return say(r, RES_FAIL, "veth0/veth2 never became RUNNING");
    return 0;
}

static pid_t
start_netmon(struct netmon_shared *sh, int wake_fd, int *alive_w)
{
    static struct conf c;
    int pfd[2];
    pid_t pid;

    memset(&c, 0, sizeof(c));
    c.networkchangedetection = true;
    c.uploadpauseonchange = true;
    c.reconnectdelay = 30;
    c.nlisten = 2;
    snprintf(c.listen[0].addr, sizeof(c.listen[0].addr), "10.99.0.1");
    snprintf(c.listen[1].addr, sizeof(c.listen[1].addr), "10.97.0.1");
    c.listen[0].port = c.listen[1].port = 8080;
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    if ((pid = fork()) == 0) {
        close(pfd[1]);
        _exit(netmon_run(&c, sh, wake_fd, pfd[0]) == 0 ? 0 : 1);
    }
    close(pfd[0]);
    *alive_w = pfd[1];
    return pid;
}

static int
check_change(struct result *r, struct netmon_shared *sh, int ep)
{
    struct epoll_event e;
    char last[128];

    /* veth2 goes first: netlink delivers in order, so if the veth0 change
     * is the only one counted, the veth2 change was judged irrelevant. */
    if (system("ip link set veth2 down && ip link set veth1 down") != 0)
        return say(r, RES_FAIL, "ip link set down failed");
    if (!WAIT_FOR(atomic_load(&sh->epoch) >= 1, 3000))
        return say(r, RES_FAIL, "epoch did not advance after carrier loss");
    usleep(100000);
    netstate_last_change(sh, last, sizeof(last));
    if (atomic_load(&sh->epoch) != 1 || atomic_load(&sh->changes_total) != 1)
        return say(r, RES_FAIL, "expected one change, got %llu (last: %s)",
                   (unsigned long long)atomic_load(&sh->changes_total), last);
    if (strncmp(last, "veth0: carrier lost", 19) != 0)
        return say(r, RES_FAIL, "last_change is \"%s\"", last);
    if (atomic_load(&sh->paused_until_ms) < mono_ms() + 25000)
        return say(r, RES_FAIL, "paused_until not ~30 s ahead");
    if (epoll_wait(ep, &e, 1, 0) != 1)
        return say(r, RES_FAIL, "wake eventfd did not wake an epoll waiter");
    return 0;
}

/* SIGHUP forces a full re-dump, the ENOBUFS path; an unchanged network must
 * not read as a change. */
static int
check_resync(struct result *r, struct netmon_shared *sh, pid_t pid)
{
    uint64_t before = atomic_load(&sh->resyncs_total);

    kill(pid, SIGHUP);
    if (!WAIT_FOR(atomic_load(&sh->resyncs_total) > before, 2000))
        return say(r, RES_FAIL, "SIGHUP did not trigger a resync");
    if (atomic_load(&sh->epoch) != 1)
        return say(r, RES_FAIL, "resync of an unchanged network counted "
                   "as a change");
    return 0;
}

/* Overrun the socket while netmon is stopped, with the listen address
 * removed after the queue is full: that event is dropped by the kernel, so
 * only the ENOBUFS resync can report it. */
static int
check_overrun(struct result *r, struct netmon_shared *sh, pid_t pid)
{
    uint64_t resyncs = atomic_load(&sh->resyncs_total);
    char last[128];
    FILE *f;

    if ((f = popen("ip -batch -", "w")) == NULL)
        return say(r, RES_FAIL, "popen: %s", strerror(errno));
    kill(pid, SIGSTOP);
    for (int i = 0; i < 3000; i++)
        fprintf(f, "link set dev veth3 mtu %d\n", 1400 + i % 2 * 100);
    fprintf(f, "addr del 10.97.0.1/24 dev veth4\n");
    if (pclose(f) != 0)
        return say(r, RES_FAIL, "ip -batch failed");
    kill(pid, SIGCONT);
    if (!WAIT_FOR(atomic_load(&sh->resyncs_total) > resyncs
                  && atomic_load(&sh->epoch) >= 2, 2000))
        return say(r, RES_FAIL, "no resync after overrun (resyncs %llu, "
                   "epoch %llu)",
                   (unsigned long long)atomic_load(&sh->resyncs_total),
                   (unsigned long long)atomic_load(&sh->epoch));
    netstate_last_change(sh, last, sizeof(last));
    if (strcmp(last, "veth4: address 10.97.0.1/24 removed") != 0)
        return say(r, RES_FAIL, "after overrun, last_change is \"%s\"", last);
    return 0;
}

static int
check_exit(struct result *r, pid_t pid, int alive_w)
{
    int status = -1;

    close(alive_w);
    if (!WAIT_FOR(waitpid(pid, &status, WNOHANG) == pid, 2000)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return say(r, RES_FAIL, "netmon ignored the parent-alive EOF");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return say(r, RES_FAIL, "netmon exit status %d", status);
    return 0;
}

static void
run_in_netns(struct result *r)
{
    struct netmon_shared *sh;
    struct epoll_event e = { .events = EPOLLIN | EPOLLET };
    int wake, ep, alive_w;
    pid_t pid;

    log_set_level(LOG_LVL_ERROR);   /* the overrun warns by design */
    if (enter_netns(r) != 0 || make_links(r) != 0)
        return;
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (sh == MAP_FAILED || wake < 0 || ep < 0
        || epoll_ctl(ep, EPOLL_CTL_ADD, wake, &e) < 0) {
        say(r, RES_FAIL, "setup: %s", strerror(errno));
        return;
    }
    if ((pid = start_netmon(sh, wake, &alive_w)) < 0) {
        say(r, RES_FAIL, "fork: %s", strerror(errno));
        return;
    }
    if (!WAIT_FOR(atomic_load(&sh->resyncs_total) >= 1, 2000)) {
        say(r, RES_FAIL, "netmon never finished its first dump");
        kill(pid, SIGKILL);
        return;
    }
    if (check_change(r, sh, ep) == 0 && check_resync(r, sh, pid) == 0
        && check_overrun(r, sh, pid) == 0 && check_exit(r, pid, alive_w) == 0)
        say(r, RES_PASS, "ok");
    else
        kill(pid, SIGKILL);
}

static void
test_netns_carrier_loss(void)
{
    struct result *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int status;
    pid_t pid;

    CU_ASSERT_FATAL(r != MAP_FAILED);
    say(r, RES_FAIL, "test process died");
    fflush(NULL);
    if ((pid = fork()) == 0) {
        run_in_netns(r);
        _exit(0);
    }
    CU_ASSERT_FATAL(pid > 0);
    if (!WAIT_FOR(waitpid(pid, &status, WNOHANG) == pid, 8000)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        say(r, RES_FAIL, "timed out");
    }
    if (r->code == RES_SKIP) {
        printf("    netmon namespace test skipped: %s\n", r->msg);
        if (geteuid() == 0)
            CU_FAIL("namespace test cannot run, and we are root");
    } else if (r->code != RES_PASS) {
        printf("    netmon namespace test: %s\n", r->msg);
    }
    CU_ASSERT_NOT_EQUAL(r->code, RES_FAIL);
    munmap(r, sizeof(*r));
}

static CU_TestInfo tests[] = {
    { "netns carrier loss", test_netns_carrier_loss },
    CU_TEST_INFO_NULL
};
UNIT_SUITE("netmon", NULL, NULL, tests);
