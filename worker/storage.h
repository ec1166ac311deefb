/* storage: are storage.dir and storage.staging still there and usable?
 *
 * A worker holds both directories open from its start. An operator who
 * deletes and re-creates one (a restore, a remount) would leave it writing
 * into an unlinked directory, and one whose disk fills or whose permissions
 * change would fail every upload only after its body was read. These checks
 * re-open a replaced directory on the same descriptor number and turn what
 * cannot be fixed into an early, named 503. */
#ifndef WORKER_STORAGE_H
#define WORKER_STORAGE_H

#include <stddef.h>

struct conn;
struct http_request;
struct worker;

/* At a request head, before any body byte is read: for a method that
 * stores (PUT, POST, PATCH), answers 503 naming the problem when storage
 * is missing, not a directory, unwritable or split across filesystems.
 * Returns 0 to go on, -1 when it has answered. */
int  storage_gate(struct conn *c, const struct http_request *req);
/* Once a second: keeps the descriptors fresh for downloads too, and logs
 * when storage stops or starts being usable again. */
void storage_tick(struct worker *w);
/* /health: the gate's checks plus storage.min_free. 0, or -1 with a
 * reason naming the configuration key in why. */
int  storage_health(struct worker *w, char *why, size_t len);

#endif
