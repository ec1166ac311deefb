/* conf: the daemon's configuration, read with libconfig and checked whole.
 *
 * conf_load either returns a complete, validated struct conf or fails with a
 * message naming file, line and key. Unknown keys are errors: a typo must not
 * silently fall back to a default. Every field has a default (conf_defaults),
 * so `make run` works from the embedded minimal config. */
#ifndef LIB_CONF_CONF_H
#define LIB_CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONF_MAX_LISTEN   16
#define CONF_MAX_SECRETS  8
#define CONF_MAX_ORIGINS  16
#define CONF_PATH_MAX     1024

struct conf_listen {
    char addr[64];              /* numeric IPv4 or IPv6 address, no brackets */
    int  port;
    bool tls;
};

struct conf_secret {
    unsigned char key[256];
    size_t        len;
};

/* storage.sync: when a 201 is sent (docs/recovery.md, "Sync modes"). */
enum conf_sync {
    CONF_SYNC_ALWAYS,   /* each upload synced on its own before its answer */
    CONF_SYNC_BATCH,    /* uploads finishing together share their syncs */
    CONF_SYNC_OFF,      /* no sync at all: 201 means "in the page cache" */
};

struct conf {
    char     source[CONF_PATH_MAX];     /* file it came from, for messages */

    /* server */
    struct conf_listen listen[CONF_MAX_LISTEN];
    size_t   nlisten;
    int      workers;                   /* 0 = number of online CPUs */
    int      max_connections;           /* per worker */
    int      max_conns_per_addr;        /* all workers; 0 = no limit */
    int      max_uploads_per_addr;      /* all workers; 0 = no limit */
    char     user[64], group[64];       /* drop to these after bind; "" = stay */
    char     pidfile[CONF_PATH_MAX];
    int      shutdown_grace;            /* s: in-flight requests may finish */
    char     url_prefix[256];           /* "/" or "/upload/": stripped before MAC */

    /* storage */
    char     storage_dir[CONF_PATH_MAX];
    char     staging_dir[CONF_PATH_MAX];   /* same filesystem as storage_dir */
    uint64_t max_upload_size;           /* bytes */
    uint64_t min_free_bytes;            /* refuse (507) below this much free */
    unsigned file_mode;                 /* published files (fchmod) */
    unsigned dir_mode;                  /* directories made in storage_dir */
    int      sync_mode;                 /* enum conf_sync */
    int      sync_window_ms;            /* batch: longest wait for company */
    int      sync_batch_max;            /* batch: uploads per group commit */

    /* security */
    struct conf_secret secrets[CONF_MAX_SECRETS];
    size_t   nsecrets;
    int      token_max_lifetime;        /* s: v3/token expiries further out are refused */
    char     cors_origins[CONF_MAX_ORIGINS][256];
    size_t   ncors_origins;

    /* timeouts (s) */
    int      headertimeout;             /* a request head, first byte to last
                                           (capped by readtimeout) */
    int      readtimeout;               /* a body may stall this long */
    int      writetimeout;              /* a response write may stall this long */
    int      idletimeout;               /* keep-alive connection with no request */
    int      uploadtimeout;             /* one request body, start to end */

    /* network */
    bool     networkchangedetection;
    bool     uploadpauseonchange;
    int      reconnectdelay;            /* s: pause window after a change */
    int      keepaliveinterval;         /* s: TCP keep-alive idle and interval */
    int      keepalivecount;

    /* uploads */
    char     shm_name[64];              /* POSIX shm name, "/hmac-file-server" */
    int      session_capacity;
    int      sessiontimeout;            /* s: idle resumable sessions expire */
    uint64_t chunk_max_size;            /* bytes: largest single chunk */
    uint64_t chunk_size;                /* bytes: the fixed chunk size clients
                                           of X-Chunk-Number use */
    uint64_t resumable_min_size;        /* bytes: smaller plain PUTs are
                                           stored in one piece */
    bool     resumable_uploads;         /* tus, resumable plain PUTs */
    bool     chunked_uploads;           /* X-Upload-Session-ID requests */
    int      max_retries;               /* of a transient storage error */

    /* cluster (docs/cluster.md); "" = a single node, no owner locks */
    char     node_id[65];               /* this node's name among those
                                           sharing storage */

    /* tls */
    char     tls_cert[CONF_PATH_MAX];
    char     tls_key[CONF_PATH_MAX];

    /* logging */
    char     log_target[CONF_PATH_MAX]; /* "stderr", "syslog" or a path */
    int      log_level;                 /* enum log_level */
    char     access_log[CONF_PATH_MAX]; /* "off", "syslog[:SOCKET]" or a
                                           path: one line per request */
};

void conf_defaults(struct conf *c);
/* Reads path into c (defaults first). 0 on success; -1 with err set to
 * "FILE:LINE: KEY: problem". */
int  conf_load(const char *path, struct conf *c, char *err, size_t errlen);
/* Same, from an in-memory string (the embedded dev config, tests). */
int  conf_load_string(const char *text, const char *name, struct conf *c,
                      char *err, size_t errlen);
/* Formats "FILE:LINE: KEY: problem" into err for a check made after loading
 * (KEY is "group.key"; its line is looked up in c->source). Returns -1. */
int  conf_key_error(const struct conf *c, const char *key, char *err,
                    size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
