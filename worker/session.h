/* session: one request's work on a resumable upload session.
 *
 * Glue between the shared session table (shm/table.h), the session's
 * manifest (lib/store/manifest.h) and the worker's sync pool: everything
 * that fsyncs runs on the pool, every continuation comes back on the loop.
 * Used by plain PUT, the chunked-header protocol and tus alike:
 *
 *   sess_new -> sess_open (claim; create or open the manifest)
 *            -> sess_lease [a, b) -> sess_write ... -> sess_finish
 *   sess_checkpoint makes what arrived durable while the body streams;
 *   sess_detach when the client is gone: what arrived is kept. */
#ifndef WORKER_SESSION_H
#define WORKER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/store/manifest.h"
#include "shm/table.h"

struct worker;
struct sess;

/* rc: 0 = done; otherwise an HTTP status naming the outcome. */
typedef void sess_cb(struct sess *s, int rc, void *arg);

/* What sess_lease found. */
#define SESS_LEASED  0
#define SESS_HELD    1      /* the whole range is already durable */
#define SESS_DIGEST_MISMATCH (-100)   /* internal publish result */

struct sess *sess_new(struct worker *w, const uint8_t key[MANIFEST_KEY_LEN],
                      const struct manifest_header *h);
/* Claims the session; if it is new and `create` is set, creates its
 * manifest (HEADER durable before cb); if it exists, reads its HEADER, so
 * sess_header is then the durable one (a tus request knows only the key).
 * cb rc: 0, 404 (unknown and !create), 409 (bound to another size or
 * protocol), 503 (table full), 500. A DONE or DOOMED session answers 0
 * without opening anything: check sess_view. */
void sess_open(struct sess *s, bool create, sess_cb *cb, void *arg);
/* A plain PUT that began as a one-shot staging file (no session, so no
 * manifest syncs) and turned out to need resuming: claims the session,
 * which must be new, makes staging/<name> (open as fd, which must stay
 * open until cb) its `data` (manifest_adopt) and
 * leases [0, size) with the `written` bytes already in it (their CRC-32C
 * `crc`), to be committed like any others. The staging name is consumed
 * once cb says 0. cb rc: 0, 409 (the session exists already: the caller
 * keeps its one-shot file), 503, 507, 500. */
void sess_adopt(struct sess *s, const char *name, int fd, uint64_t written,
                uint32_t crc, sess_cb *cb, void *arg);
/* Look the session up without opening it (status requests): 0 or 404. */
int  sess_find(struct sess *s, struct shm_view *v);
/* Snapshot of the shared entry (after sess_open). */
int  sess_view(struct sess *s, struct shm_view *v);
/* Range list for status answers: "0-99,200-299". */
void sess_ranges(struct sess *s, char *buf, size_t len);
/* Reserve [a, b) for this request. Returns SESS_LEASED, SESS_HELD, or an
 * HTTP status (409 overlap/size, 503 busy or full). If the start of the
 * range is already held, *skip_r is how many body bytes to drop first. */
int  sess_lease(struct sess *s, uint64_t a, uint64_t b, uint64_t *skip_r);
/* tus PATCH: lease exactly [a, b), and only if a is the end of the
 * contiguous prefix (Upload-Offset). SESS_LEASED, or 409 (a is not the
 * offset, or [a, b) passes the size), 503 (another write is in progress). */
int  sess_lease_append(struct sess *s, uint64_t a, uint64_t b);
/* Body bytes, in order, at the leased offset. -1 with errno on failure. */
int  sess_write(struct sess *s, const char *buf, size_t len);
uint64_t sess_written(const struct sess *s);
/* The data file and where the lease's bytes start in it (write-back). */
int      sess_data_fd(const struct sess *s);
uint64_t sess_lease_start(const struct sess *s);
/* Make what was written durable now (no answer expected). */
void sess_checkpoint(struct sess *s);
/* Body complete: commit it; if that completes the file, publish it.
 * cb rc: 0 (durable, upload not complete yet), 201 (published), 200 (an
 * identical file was there), 409 (a different file is there), 507, 500. */
void sess_finish(struct sess *s, sess_cb *cb, void *arg);
/* The request ends without finish (client gone, error): commit what was
 * written, release the lease and free in the background. */
void sess_detach(struct sess *s);
/* Like sess_detach, but what was written since the last commit is dropped
 * (a tus body whose checksum failed or can no longer be checked). */
void sess_discard(struct sess *s);
/* tus creation-defer-length, after sess_open: the data file is cut to
 * `size`, a SIZE record made durable, then the table told. cb rc: 0, 409
 * (a size is already set, or bytes are held past it), 507, 500. */
void sess_set_size(struct sess *s, uint64_t size, sess_cb *cb, void *arg);
/* tus termination: abort and remove the session; cb rc 204 or 500. The
 * caller frees with sess_free afterwards. */
void sess_terminate(struct sess *s, sess_cb *cb, void *arg);
/* A repeated request's bytes for a range already held: compare their
 * CRC-32C with the data file's. cb rc: 0 same, 409 different or unreadable
 * (never written over held bytes either way). */
void sess_verify(struct sess *s, uint64_t off, uint64_t len, uint32_t crc,
                 sess_cb *cb, void *arg);
/* The entry outlived its session directory (a worker died after
 * publishing, before the table heard of it): doom it for the janitor. */
void sess_abandon(struct sess *s);
/* The whole file's SHA-256 as the client announced it (X-Content-SHA256,
 * Digest, Repr-Digest): checked before publishing; a mismatch answers 460
 * and drops the session. */
void sess_expect_sha256(struct sess *s, const uint8_t sha[32]);
/* tus concatenation, after sess_open and sess_lease of the whole final
 * upload [0, size): fill it from the partial uploads named in the HEADER's
 * `parts` (each checked: a complete partial of the same signed path and
 * URL), then sess_finish commits and publishes as usual. cb rc: 0, 400 (not
 * a partial, incomplete, gone), 403 (another file's or URL's), 410
 * (expired or terminated), 507, 500; sess_error says which. After the
 * final is published its partials are removed. */
void sess_concat(struct sess *s, sess_cb *cb, void *arg);
/* The last failure's text (for the answer's body). */
const char *sess_error(const struct sess *s);
/* A cluster node's 503: another node owns the session (sess_error names
 * it). The client retries; HAProxy routes it to the owner. */
bool sess_elsewhere(const struct sess *s);
/* Cluster ownership is configured: status requests open their session
 * (sess_open) instead of looking it up (sess_find), so the node takes the
 * session over if it must. */
bool sess_open_needed(const struct sess *s);
/* Free after sess_open failed or when nothing was leased or written. */
void sess_free(struct sess *s);
const struct manifest_header *sess_header(const struct sess *s);
/* Per worker, at start: repair of entries whose lock holder died. */
void sess_setup(struct worker *w);
/* At exit, after the pool has stopped: drops the cluster owner locks. */
void sess_teardown(struct worker *w);
/* Expire idle sessions and remove their directories (off the loop). */
void sess_janitor(struct worker *w);
/* Releases the table leases and claims of the workers the master reaped
 * (queued in stats->dead), off the loop: when the master signals a reap,
 * and every tick. sess_forget_dead_now: the same at once, each lock
 * waited for at most timeout_ms, then up to 2 s for other workers' clean-up
 * in progress (a new worker, before it serves). */
void sess_forget_dead(struct worker *w);
void sess_forget_dead_now(struct worker *w, int timeout_ms);
/* The janitor's work, run now on the calling (pool) thread: removes the
 * sessions that are due (idle past uploads.sessiontimeout, expired,
 * aborted) with their staging data. Returns how many, or -1 with err. */
int  sess_reclaim(struct worker *w, char *err, size_t errlen);
bool sess_busy(const struct sess *s);

#endif
