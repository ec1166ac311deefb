/* writeback: start the disk writing a large upload's bytes while its body
 * still arrives, so the fdatasync before publication (or a session's
 * commit) waits only for the tail instead of the whole file.
 *
 * Each time the body completes another stretch of bytes, one job on
 * the worker's sync pool issues sync_file_range(SYNC_FILE_RANGE_WRITE) on
 * the new stretches and waits (WAIT_BEFORE|WRITE|WAIT_AFTER) for the ones
 * the previous job started, which bounds the dirty pages one upload keeps
 * in memory. At most one job per upload is in flight; stretches completed
 * meanwhile go together in the next one. This is no durability promise:
 * the fdatasync still comes, it merely finds less to do.
 *
 * Loop thread only, except the job itself. The job syncs through a file
 * description of its own (the file opened again, never a dup): a
 * write-back error is then reported to it and, separately, to the
 * upload's own description, whose fdatasync still fails (a dup would share
 * the report, and the later fdatasync could say 0 over lost pages). It
 * outlives the upload if it must. */
#ifndef WORKER_WRITEBACK_H
#define WORKER_WRITEBACK_H

#include <stdbool.h>
#include <stdint.h>

/* A one-request PUT: long enough that a job's overhead is nothing beside
 * its bytes. A session's lease: a chunk ends in its own fdatasync, so
 * chunks of a few MiB (the SDKs' and most clients') need stretches well
 * below their size for the disk to start before the body ends. */
#define WRITEBACK_STRETCH         (8ULL * 1024 * 1024)
#define WRITEBACK_STRETCH_SESSION (1ULL * 1024 * 1024)

struct worker;
struct writeback;

/* The bookkeeping, pure (tests/unit/test_writeback.c). Offsets are
 * relative to where the upload's bytes start in the file. */
struct wb_plan {
    uint64_t stretch;     /* > 0 */
    uint64_t started;     /* [0, started): handed to SYNC_FILE_RANGE_WRITE */
    uint64_t waited;      /* [0, waited): waited for */
};
struct wb_step {
    uint64_t wait_from, wait_to;      /* wait for these (may be empty) */
    uint64_t start_from, start_to;    /* start writing these */
};
/* With `written` contiguous bytes in the file and no job in flight: true
 * and the next job's ranges when another whole stretch is complete (the
 * plan then counts them as started and waited). */
bool wb_plan_next(struct wb_plan *p, uint64_t written, struct wb_step *st);

/* For the upload's file `fd` (opened again), whose bytes start at `base`,
 * in stretches of `stretch` bytes. NULL when that fails: the upload goes
 * on without it. */
struct writeback *writeback_new(struct worker *w, int fd, uint64_t base,
                                uint64_t stretch);
/* `written` bytes of the body are now in the file: maybe submit a job. */
void writeback_note(struct writeback *wb, uint64_t written);
bool writeback_busy(const struct writeback *wb);
/* A sync_file_range failed: the pages may be lost; publish nothing. */
bool writeback_failed(const struct writeback *wb);
/* fn(arg) on the loop once no job is in flight; only while busy. */
void writeback_settle(struct writeback *wb, void (*fn)(void *), void *arg);
/* The upload is done with it (a settle callback is forgotten); a job in
 * flight frees it. NULL is fine. */
void writeback_release(struct writeback *wb);

#endif
