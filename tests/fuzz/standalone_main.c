#define _GNU_SOURCE             /* asprintf */
/* standalone_main: replays fuzz inputs without libFuzzer, for `make check`.
 *
 *   ./fuzz_x [file-or-dir ...]
 *
 * Every regular file named, and every regular file directly inside a named
 * directory (sorted, so a failure is reproducible), is passed once to
 * LLVMFuzzerTestOneInput. A broken invariant aborts and a sanitizer report
 * exits non-zero, so the exit status is the verdict. With HFS_FUZZ_VERBOSE
 * set each file is named on stderr before it runs: the last name printed
 * is the culprit. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int verbose;

/* A broken invariant abort()s; exiting here instead keeps the calling
 * shell from adding its own "Aborted" line to the report. */
static void
on_abort(int sig)
{
    (void)sig;
    _exit(134);
}

static int
run_file(const char *path)
{
    struct stat st;
    uint8_t    *buf;
    size_t      off = 0;
    ssize_t     n;
    int         fd;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* Exactly the file's size, so ASan sees any read past the input. */
    if ((buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)) == NULL)
        abort();
    while (off < (size_t)st.st_size
           && (n = read(fd, buf + off, (size_t)st.st_size - off)) > 0)
        off += (size_t)n;
    close(fd);
    if (verbose)
        fprintf(stderr, "input: %s (%zu bytes)\n", path, off);
    LLVMFuzzerTestOneInput(buf, off);
    free(buf);
    return 0;
}

static int
cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
run_dir(const char *dir, size_t *count)
{
    DIR           *d = opendir(dir);
    struct dirent *e;
    char         **names = NULL;
    size_t         n = 0, cap = 0, i;
    int            rc = 0;

    if (d == NULL) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            if ((names = realloc(names, cap * sizeof(*names))) == NULL)
                abort();
        }
        if (asprintf(&names[n++], "%s/%s", dir, e->d_name) < 0)
            abort();
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp);
    for (i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(names[i]) < 0)
                rc = -1;
            else
                (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int
main(int argc, char **argv)
{
    struct stat st;
    size_t      count = 0;
    int         i, rc = 0;

    verbose = getenv("HFS_FUZZ_VERBOSE") != NULL;
    signal(SIGABRT, on_abort);
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (i = 1; i < argc; i++) {
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (run_dir(argv[i], &count) < 0)
                rc = 1;
        } else if (run_file(argv[i]) < 0) {
            rc = 1;
        } else {
            count++;
        }
    }
    printf("%zu inputs\n", count);
    return rc;
}
