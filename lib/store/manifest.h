/* manifest: the durable record of one resumable upload session.
 *
 * Each session is a directory staging/<aa>/<key-hex>/ holding `data` (the file
 * being assembled, written with pwrite at offsets) and `manifest` (append-only
 * checksummed records: HEADER, CHUNK, SIZE, COMPLETE, ABORT). The manifest is
 * the truth; the shm session table is a cache rebuilt from it. Byte layout and
 * crash analysis: docs/recovery.md.
 *
 * Every call here may block on fsync or on a short lock: run them off the
 * event loop (worker sync pool, or the master before workers start). Several
 * processes may append to one manifest at once; appends are serialised with
 * an OFD lock (never flock: docs/cluster.md), so each worker should open
 * its own handle. */
#ifndef LIB_STORE_MANIFEST_H
#define LIB_STORE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "lib/util/ranges.h"

#define MANIFEST_KEY_LEN      32        /* == SHM_KEY_LEN */
#define MANIFEST_KEY_HEXLEN   64
#define MANIFEST_ID_MAX       128       /* session id bytes */
#define MANIFEST_PATH_MAX     1024      /* relative path bytes */
#define MANIFEST_CTYPE_MAX    255
#define MANIFEST_META_MAX     4096      /* tus Upload-Metadata, verbatim */
#define MANIFEST_REASON_MAX   255
#define MANIFEST_PARTS_MAX    1024      /* tus final: its partials' ids */
#define MANIFEST_RECORDS_MAX  65536     /* appends beyond fail with E2BIG */
#define MANIFEST_SIZE_UNKNOWN UINT64_MAX

enum manifest_proto {
    MANIFEST_PROTO_CHUNKED = 1,         /* X-Upload-Session-ID / X-Chunk-* */
    MANIFEST_PROTO_TUS     = 2,
    MANIFEST_PROTO_PUT     = 3,         /* plain PUT, checkpointed */
    MANIFEST_PROTO_IETF    = 4          /* IETF resumable-upload draft */
};
#define MANIFEST_PROTO_LAST MANIFEST_PROTO_IETF

/* tus concatenation: what a session is in it (HEADER, byte 3). */
enum manifest_concat {
    MANIFEST_CONCAT_NONE    = 0,
    MANIFEST_CONCAT_PARTIAL = 1,        /* never published; a final uses it */
    MANIFEST_CONCAT_FINAL   = 2         /* assembled from `parts` */
};

enum manifest_type {
    MANIFEST_HEADER = 1, MANIFEST_CHUNK, MANIFEST_SIZE, MANIFEST_COMPLETE,
    MANIFEST_ABORT
};

struct manifest_header {
    uint8_t  proto;                     /* enum manifest_proto */
    uint8_t  mac_variant;               /* caller's code for the URL's MAC */
    uint8_t  concat;                    /* enum manifest_concat */
    uint64_t size;                      /* total, or MANIFEST_SIZE_UNKNOWN */
    uint64_t chunk_size;                /* nominal chunk size, 0 if none */
    uint64_t mac_size;                  /* size the MAC binds, or UNKNOWN */
    int64_t  mac_expiry;                /* expiry the MAC binds, 0 if none */
    int64_t  created, expires;          /* unix seconds */
    char     id[MANIFEST_ID_MAX + 1];
    char     path[MANIFEST_PATH_MAX + 1];      /* signed relative path */
    char     ctype[MANIFEST_CTYPE_MAX + 1];    /* MAC-bound type, "" if none */
    char     meta[MANIFEST_META_MAX + 1];
    char     parts[MANIFEST_PARTS_MAX + 1];    /* final: space-separated
                                                  partial ids, in order */
};

struct manifest_chunk {
    uint64_t offset, length;
    uint32_t number;                    /* client chunk number, 0 if none */
    uint32_t crc;                       /* crc32c of the chunk's bytes */
};

struct manifest_record {
    enum manifest_type type;
    uint64_t           seq;             /* the record's byte offset */
    union {
        struct manifest_header header;
        struct manifest_chunk  chunk;
        uint64_t               size;
        struct {
            uint8_t sha256[32];
            char    path[MANIFEST_PATH_MAX + 1];
        } complete;
        char                   reason[MANIFEST_REASON_MAX + 1];
    } u;
};

/* What a manifest proves about its session (manifest_load). */
struct manifest_state {
    struct manifest_header header;
    uint64_t      size;                 /* header's, or the SIZE record's */
    struct ranges held;                 /* union of the accepted CHUNKs */
    uint32_t      records;
    uint32_t      bad_chunks;           /* CHUNKs dropped: beyond data/CRC */
    int           complete, aborted;
    uint8_t       sha256[32];
    char          final_path[MANIFEST_PATH_MAX + 1];
    char          reason[MANIFEST_REASON_MAX + 1];
    int64_t       mtime;                /* last append: last activity */
    uint64_t      torn;                 /* bytes after the last good record */
};

struct manifest;

/* Flags for manifest_replay / manifest_load. */
#define MANIFEST_TRUNCATE 0x1   /* cut a torn tail and fsync (recovery) */
#define MANIFEST_VERIFY   0x2   /* re-read each CHUNK's bytes, check CRC */

/* key = SHA-256 over the length-prefixed session id and signed path: one id
 * can never reach another path's session. Also the shm table key. */
void manifest_key(const char *id, size_t idlen, const char *path,
                  size_t pathlen, uint8_t key[MANIFEST_KEY_LEN]);
void manifest_key_hex(const uint8_t key[MANIFEST_KEY_LEN],
                      char hex[MANIFEST_KEY_HEXLEN + 1]);

/* Makes the session directory, `data` (preallocated when size is known) and
 * `manifest` with its HEADER, all durable before it returns. Fails with errno
 * EEXIST if the directory exists (leftovers of a dead creator: the caller,
 * owning the session in shm, removes them and retries). ENOSPC/EDQUOT: 507. */
int  manifest_create(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
                     const struct manifest_header *h, struct manifest **m_r,
                     char *err, size_t errlen);
/* Like manifest_create, but the session's `data` is the existing file
 * staging/<staging_name>, open as `fd` (a one-shot upload that turned out
 * to need resuming): linked into the new directory, which is made durable
 * as above, then the staging name is removed; the handle's data
 * descriptor is a dup of fd. Its bytes are not synced here:
 * manifest_append_chunks does that before any record vouches for them. */
int  manifest_adopt(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
                    const struct manifest_header *h, const char *staging_name,
                    int fd, struct manifest **m_r, char *err, size_t errlen);
/* Opens an existing session for appending and reading. ENOENT if the
 * manifest or the data file is missing; the latter means store_publish
 * consumed the data (published before COMPLETE was written): remove it. */
int  manifest_open(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
                   struct manifest **m_r, char *err, size_t errlen);
void manifest_close(struct manifest *m);
/* The data file, for pwrite at chunk offsets (never over a held range). */
int  manifest_data_fd(const struct manifest *m);

/* fsyncs and fdatasyncs made through this handle so far (/metrics; none
 * under storage.sync = off). */
uint32_t manifest_syncs(const struct manifest *m);
/* manifest_remove makes one: the fan-out directory's. */
#define MANIFEST_REMOVE_SYNCS 1

/* Makes chunks durable: fdatasync(data), one write of n CHUNK records,
 * fdatasync(manifest). Only after it returns 0 may the ranges be reported
 * held. Several chunks of one session share the syncs (group commit). After
 * any failure the handle refuses further appends: a failed fsync is never
 * retried (the kernel may have dropped the dirty pages); abort the session. */
int  manifest_append_chunks(struct manifest *m, const struct manifest_chunk *c,
                            size_t n, char *err, size_t errlen);
int  manifest_append_size(struct manifest *m, uint64_t size,
                          char *err, size_t errlen);
/* After the final file is published and its directory fsynced. */
int  manifest_append_complete(struct manifest *m, const uint8_t sha256[32],
                              const char *final_path, char *err, size_t errlen);
int  manifest_append_abort(struct manifest *m, const char *reason,
                           char *err, size_t errlen);

struct manifest_replay {
    uint32_t records;                   /* good records seen */
    uint64_t end;                       /* offset after the last good one */
    uint64_t torn;                      /* bytes after end (cut if TRUNCATE) */
};

/* Calls fn for each record in order; fn returns 0 to go on, anything else
 * stops the replay, which returns that value. The first short or CRC-bad
 * record ends the log (a torn tail, not an error). A record with a good CRC
 * but an unknown version or a malformed payload is corruption: -1, EBADMSG.
 * MANIFEST_TRUNCATE is for recovery only, when nobody else appends. */
typedef int (*manifest_record_fn)(const struct manifest_record *r, void *arg);
int  manifest_replay(struct manifest *m, int flags, manifest_record_fn fn,
                     void *arg, struct manifest_replay *res,
                     char *err, size_t errlen);
/* Replays into *st and checks the sequence (HEADER first, chunks within the
 * size and the data file). ENODATA: no durable HEADER, the session was never
 * acknowledged and may be removed. */
int  manifest_load(struct manifest *m, int flags, struct manifest_state *st,
                   char *err, size_t errlen);

/* The CHUNK record for exactly [offset, offset + length): 0 and *c, or -1
 * with ENOENT. For a duplicate chunk: compare its CRC, then ack or 409. */
int  manifest_find_chunk(struct manifest *m, uint64_t offset, uint64_t length,
                         struct manifest_chunk *c, char *err, size_t errlen);

/* Removes the session directory (manifest first) and fsyncs its parent.
 * Removing a missing session succeeds. */
int  manifest_remove(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
                     char *err, size_t errlen);
/* Calls fn for each session directory under staging; other names are
 * skipped. fn returning non-zero stops the walk with that value. */
int  manifest_foreach(int staging_fd,
                      int (*fn)(const uint8_t key[MANIFEST_KEY_LEN], void *arg),
                      void *arg, char *err, size_t errlen);

#endif
