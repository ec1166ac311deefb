/* ctl.c: powerfs's control socket (one command line in, one reply line
 * out, per connection) and its fault rules (see powerfs.h). */
#include "powerfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int
pfs_fault(struct pfs *fs, const char *op, struct pfs_node *n)
{
    char path[1024];

    if (fs->nrules == 0 || n == NULL)
        return 0;
    pfs_path(fs, n, path, sizeof(path));
    for (int i = 0; i < fs->nrules; i++) {
        struct pfs_rule *r = &fs->rules[i];
        if (strcmp(r->op, op) != 0 || r->count == 0
            || (r->match[0] && strstr(path, r->match) == NULL))
            continue;
        if (r->skip > 0) {
            r->skip--;
            continue;
        }
        if (r->count > 0)
            r->count--;
        fs->n_faults++;
        fprintf(stderr, "powerfs: fault %s on %s: %s\n", op, path,
                r->err ? strerror(r->err) : "short write");
        return r->err ? r->err : -1;
    }
    return 0;
}

static void
add_rule(struct pfs *fs, const char *args, char *rep, size_t replen)
{
    struct pfs_rule r;
    char err[32];

    memset(&r, 0, sizeof(r));
    int k = sscanf(args, "%15s %31s %ld %ld %127s", r.op, err, &r.skip,
                   &r.count, r.match);
    if (k < 4 || fs->nrules == PFS_RULES) {
        snprintf(rep, replen, "error: fault OP ERR SKIP COUNT [MATCH]");
        return;
    }
    r.err = strcmp(err, "short") == 0 ? 0
          : strcmp(err, "EIO") == 0 ? EIO
          : strcmp(err, "ENOSPC") == 0 ? ENOSPC
          : strcmp(err, "EDQUOT") == 0 ? EDQUOT : atoi(err);
    fs->rules[fs->nrules++] = r;
    snprintf(rep, replen, "ok");
}

static void
command(struct pfs *fs, char *line, char *rep, size_t replen)
{
    double p = 0;
    unsigned seed = 1;

    line[strcspn(line, "\r\n")] = '\0';
    pthread_mutex_lock(&fs->mu);
    if (strcmp(line, "ping") == 0) {
        snprintf(rep, replen, "ok");
    } else if (strncmp(line, "cut", 3) == 0) {
        sscanf(line + 3, "%lf %u", &p, &seed);
        pfs_cut(fs, p, seed, rep, replen);
        /* The lock stays held: nothing may change after the cut. */
        return;
    } else if (strncmp(line, "fault ", 6) == 0) {
        add_rule(fs, line + 6, rep, replen);
    } else if (strcmp(line, "clear") == 0) {
        fs->nrules = 0;
        snprintf(rep, replen, "ok");
    } else if (strcmp(line, "syncall") == 0) {
        int rc = pfs_sync_all(fs);
        snprintf(rep, replen, rc == 0 ? "ok" : "error: %s", strerror(-rc));
    } else if (strcmp(line, "stats") == 0) {
        snprintf(rep, replen, "ok fsync=%llu fsyncdir=%llu faults=%llu",
                 (unsigned long long)fs->n_fsync,
                 (unsigned long long)fs->n_fsyncdir,
                 (unsigned long long)fs->n_faults);
    } else {
        snprintf(rep, replen, "error: unknown command");
    }
    pthread_mutex_unlock(&fs->mu);
}

struct ctl {
    struct pfs *fs;
    int         lfd;
};

static void *
ctl_main(void *arg)
{
    struct ctl *c = arg;
    for (;;) {
        char line[512], rep[512];
        int fd = accept(c->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, line, sizeof(line) - 1);
        if (n <= 0) {
            close(fd);
            continue;
        }
        line[n] = '\0';
        command(c->fs, line, rep, sizeof(rep) - 1);
        bool cut = c->fs->frozen;
        strcat(rep, "\n");
        if (write(fd, rep, strlen(rep)) < 0) {
        }
        close(fd);
        if (cut)
            _exit(0);       /* the page cache was this process's memory */
    }
    return NULL;
}

int
pfs_ctl_start(struct pfs *fs, const char *path)
{
    static struct ctl c;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    pthread_t t;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    unlink(path);
    c.fs = fs;
    c.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.lfd < 0 || bind(c.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0
        || listen(c.lfd, 8) < 0)
        return -1;
    if (pthread_create(&t, NULL, ctl_main, &c) != 0)
        return -1;
    pthread_detach(t);
    return 0;
}
