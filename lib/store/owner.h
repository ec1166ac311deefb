/* owner: which cluster node owns a resumable session (docs/cluster.md).
 *
 * A session is owned by one node at a time; the proof is an OFD lock
 * (F_OFD_SETLK, never flock: the two kinds conflict on GlusterFS) on
 * staging/<aa>/<key>.owner, beside the session directory. Byte 0 is a
 * gate, write-locked only while acquiring; byte owner_slot(node_id) holds
 * a read lock of every process of the owning node that serves the session,
 * so a node's workers share the ownership and other nodes are kept out. No
 * clock is involved: Gluster (or the kernel) drops a lock when its holder's
 * descriptor closes or its client is declared dead.
 *
 * The file also holds a token, written at each new ownership: a holder
 * whose lock was dropped behind its back (a partition) sees a foreign
 * token in owner_check even if the other node has released since.
 *
 * Every call may block on the filesystem: run them off the event loop.
 * Used only when a `cluster` section is configured. */
#ifndef LIB_STORE_OWNER_H
#define LIB_STORE_OWNER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/store/manifest.h"

#define OWNER_NODE_ID_MAX 64

enum owner_rc {
    OWNER_ERROR = -1,   /* errno set, err says what */
    OWNER_NEW = 0,      /* this node owns it now and did not before: the
                           gate is still held; rebuild what the node knows
                           of the session from disk, then owner_ready */
    OWNER_JOINED,       /* another process of this node owned it already */
    OWNER_OTHER         /* another node owns it; err names it */
};

struct owner;

/* 1 + a 46-bit hash of node_id: the byte this node's read locks cover. */
uint64_t owner_slot(const char *node_id);
/* node_id is 1..64 of [A-Za-z0-9._-]: 0, or -1. */
int  owner_node_id_valid(const char *node_id);

/* Takes the session's ownership for this process, never waiting for
 * another node (the gate is retried for a few milliseconds only). */
int  owner_acquire(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
                   const char *node_id, struct owner **o_r,
                   char *err, size_t errlen);
/* After OWNER_NEW: the node's view is rebuilt; let other processes in.
 * (When there turns out to be nothing to own, owner_remove instead, the
 * gate still held, so that nobody joins a file about to be unlinked.) */
void owner_ready(struct owner *o);
/* Still the owner? 0, or -1 with errno ESTALE (ownership moved: err names
 * why) or the filesystem's error. Run right before acknowledging or
 * publishing anything. */
int  owner_check(struct owner *o, char *err, size_t errlen);
/* Drops this process's lock. */
void owner_release(struct owner *o);
/* The session is gone from disk (published, aborted, expired): unlink the
 * .owner file if it is still ours (under the gate, taken if not held),
 * then release. */
void owner_remove(struct owner *o);
const uint8_t *owner_key(const struct owner *o);
/* At start: removes the .owner files no session goes with (left by a node
 * that died between removing a session and its owner file, or by a
 * creation that failed), each only after taking its lock, so a file a
 * live node holds (a session being created) stays. Returns how many, or
 * -1 with err. */
int  owner_sweep_orphans(int staging_fd, const char *node_id, char *err,
                         size_t errlen);

#endif
