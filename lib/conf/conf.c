/* conf.c: libconfig reader, table-driven, checked key by key and then whole.
 *
 * Every setting is dispatched through one table (group -> key -> setter), so
 * an unknown group or key is found in the same walk that assigns the known
 * ones, and every message is built from the setting itself: file and line
 * from libconfig, "group.key[i]" from the setting's path, never its value for
 * secrets. The result is assembled in a private copy and handed out only when
 * complete, so a failed reload leaves the caller's running config untouched. */
#include "lib/conf/conf.h"
#include "lib/conf/conf_internal.h"
#include "lib/conf/conf_value.h"
#include "lib/util/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SOURCE_MAX      (1 << 20)       /* config text scanned for big ints */

struct group {
    const char       *name;
    const struct key *keys;
};

/* ---- messages ---------------------------------------------------------- */

static void
setting_path(const config_setting_t *s, char *buf, size_t len)
{
    const config_setting_t *p = config_setting_parent(s);
    size_t n;

    buf[0] = '\0';
    if (p == NULL)
        return;
    if (config_setting_is_root(p)) {
        snprintf(buf, len, "%s", config_setting_name(s));
        return;
    }
    setting_path(p, buf, len);
    n = strlen(buf);
    if (config_setting_name(s) != NULL)
        snprintf(buf + n, len - n, ".%s", config_setting_name(s));
    else
        snprintf(buf + n, len - n, "[%d]", config_setting_index(s));
}

/* libconfig 1.5 records an included file under the name written in
 * @include, although it opened it relative to the include directory. */
static const char *
resolve_file(const struct ld *ld, const char *f, char *buf, size_t len)
{
    if (f == NULL)
        return NULL;
    if (f[0] == '/' || ld->incdir[0] == '\0' || strcmp(f, ld->name) == 0)
        return f;
    snprintf(buf, len, "%s/%s", ld->incdir, f);
    return buf;
}

static const char *
setting_file(const struct ld *ld, const config_setting_t *s, char *buf,
             size_t len)
{
    return resolve_file(ld, config_setting_source_file(s), buf, len);
}

static int
vfail(struct ld *ld, const config_setting_t *s, const char *key,
      const char *fmt, va_list ap)
{
    const char *file = NULL;
    unsigned    line = 1;       /* nothing to point at: the file's top */
    char        msg[512], buf[2 * CONF_PATH_MAX];

    if (s != NULL) {
        file = setting_file(ld, s, buf, sizeof(buf));
        line = config_setting_source_line(s);
    }
    if (file == NULL)
        file = ld->name;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (ld->errlen > 0)
        snprintf(ld->err, ld->errlen, "%s:%u: %s: %s", file, line, key, msg);
    return -1;
}

int __attribute__((format(printf, 3, 4)))
conf_fail(struct ld *ld, const config_setting_t *s, const char *fmt, ...)
{
    char    key[160];
    va_list ap;
    int     rc;

    setting_path(s, key, sizeof(key));
    va_start(ap, fmt);
    rc = vfail(ld, s, key, fmt, ap);
    va_end(ap);
    return rc;
}

/* For whole-config checks: s (may be NULL) only places the message. */
static int __attribute__((format(printf, 4, 5)))
fail_at(struct ld *ld, const config_setting_t *s, const char *key,
        const char *fmt, ...)
{
    va_list ap;
    int     rc;

    va_start(ap, fmt);
    rc = vfail(ld, s, key, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- libconfig 1.5 integer wrap ------------------------------------------
 * libconfig 1.5 reads an integer literal without an L suffix with atoi(), so
 * "max_upload_size = 5368709120;" silently becomes 1073741824. The parsed
 * value cannot tell, so the setting's source line is re-lexed and any plain
 * integer literal on it that does not fit in 32 bits is refused. */

static char *
slurp(const char *path)
{
    FILE  *f = fopen(path, "re");
    char  *buf;
    size_t n;

    if (f == NULL)
        return NULL;
    buf = malloc(SOURCE_MAX + 1);
    if (buf != NULL) {
        n = fread(buf, 1, SOURCE_MAX, f);
        buf[n] = '\0';
    }
    fclose(f);
    return buf;
}

static void
drop_text(struct ld *ld)
{
    if (ld->scan_text != NULL) {
        /* The file holds secrets: do not leave copies in freed memory. */
        explicit_bzero(ld->scan_text, strlen(ld->scan_text));
        free(ld->scan_text);
    }
    ld->scan_text = NULL;
    ld->scan_file[0] = '\0';
}

const char *
conf_source_text(struct ld *ld, const config_setting_t *s)
{
    char        buf[2 * CONF_PATH_MAX];
    const char *file = setting_file(ld, s, buf, sizeof(buf));

    if (file == NULL)
        return ld->text;
    if (strcmp(ld->scan_file, file) == 0)
        return ld->scan_text;
    drop_text(ld);
    snprintf(ld->scan_file, sizeof(ld->scan_file), "%s", file);
    ld->scan_text = slurp(file);
    return ld->scan_text;
}

static bool
literal_wraps(const char *tok, size_t len)
{
    char      buf[32];
    char     *end;
    long long v = 0;
    bool      hex;

    if (len >= sizeof(buf))
        return true;            /* 32+ characters: not a 32-bit number */
    memcpy(buf, tok, len);
    buf[len] = '\0';
    hex = len > 2 && buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X');
    if (buf[len - 1] == 'L' || strchr(buf, '.') != NULL)
        return false;           /* int64 or float: read correctly */
    if (!hex && strpbrk(buf, "eE") != NULL)
        return false;
    errno = 0;
    v = strtoll(buf, &end, hex ? 16 : 10);
    if (errno == ERANGE)
        return true;
    return v > INT_MAX || (!hex && v < INT_MIN);
}

static const char *
skip_string(const char *p, unsigned *ln)
{
    for (p++; *p != '\0' && *p != '"'; p++) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        if (*p == '\n')
            (*ln)++;
    }
    return *p == '"' ? p + 1 : p;
}

static const char *
skip_comment(const char *p, unsigned *ln)
{
    if (p[0] == '/' && p[1] == '*') {
        for (p += 2; *p != '\0' && !(p[0] == '*' && p[1] == '/'); p++)
            if (*p == '\n')
                (*ln)++;
        return *p != '\0' ? p + 2 : p;
    }
    while (*p != '\0' && *p != '\n')
        p++;
    return p;
}

/* strchr() would also "find" the terminating NUL. */
static bool
in_set(char ch, const char *set)
{
    return ch != '\0' && strchr(set, ch) != NULL;
}

bool
conf_line_has_wrapped_int(const char *p, unsigned line)
{
    unsigned    ln = 1;
    const char *e;

    while (*p != '\0' && ln <= line) {
        if (*p == '\n') {
            ln++;
            p++;
        } else if (*p == '"') {
            p = skip_string(p, &ln);
        } else if (*p == '#' || (p[0] == '/' && (p[1] == '/' || p[1] == '*'))) {
            p = skip_comment(p, &ln);
        } else if (isalpha((unsigned char)*p) || *p == '*') {
            while (isalnum((unsigned char)*p) || in_set(*p, "-_*"))
                p++;
        } else if (isdigit((unsigned char)*p) || (in_set(*p, "+-") &&
                   isdigit((unsigned char)p[1]))) {
            for (e = p + 1; isalnum((unsigned char)*e) || *e == '.' ||
                 (in_set(*e, "+-") && in_set(e[-1], "eE")); e++)
                ;
            if (ln == line && literal_wraps(p, (size_t)(e - p)))
                return true;
            p = e;
        } else {
            p++;
        }
    }
    return false;
}

/* ---- the table -------------------------------------------------------- */

#define F(field) offsetof(struct conf, field), sizeof(((struct conf *)0)->field)

static const struct key server_keys[] = {
    { "listen",          conf_set_listen, F(listen),          0, 0 },
    { "workers",         conf_set_int,    F(workers),         0, 256 },
    { "max_connections", conf_set_int,    F(max_connections), 1, 1 << 20 },
    { "max_connections_per_address", conf_set_int, F(max_conns_per_addr),
      0, 1 << 24 },
    { "max_uploads_per_address", conf_set_int, F(max_uploads_per_addr),
      0, 1 << 24 },
    { "user",            conf_set_str,    F(user),            0, 0 },
    { "group",           conf_set_str,    F(group),           0, 0 },
    { "pidfile",         conf_set_str,    F(pidfile),         0, 0 },
    { "shutdown_grace",  conf_set_dur,    F(shutdown_grace),  0, DAY },
    { "url_prefix",      conf_set_prefix, F(url_prefix),      1, 0 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key storage_keys[] = {
    { "dir",             conf_set_str,  F(storage_dir),     1, 0 },
    { "staging",         conf_set_str,  F(staging_dir),     1, 0 },
    { "max_upload_size", conf_set_size, F(max_upload_size), 1, LLONG_MAX },
    { "min_free",        conf_set_size, F(min_free_bytes),  0, LLONG_MAX },
    /* min: the owner bits the daemon itself needs */
    { "file_mode",       conf_set_mode, F(file_mode),       0600, 0 },
    { "dir_mode",        conf_set_mode, F(dir_mode),        0700, 0 },
    { "sync",            conf_set_sync, F(sync_mode),       0, 0 },
    /* a wait longer than a disk flush only adds latency */
    { "sync_window_ms",  conf_set_int,  F(sync_window_ms),  0, 100 },
    { "sync_batch_max",  conf_set_int,  F(sync_batch_max),  1, 1024 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key security_keys[] = {
    { "secrets",            conf_set_secrets,      F(secrets),            0, 0 },
    { "secret_files",       conf_set_secret_files, F(secrets),            0, 0 },
    { "token_max_lifetime", conf_set_dur,          F(token_max_lifetime), 1,
      366 * DAY },
    { "cors_origins",       conf_set_origins,      F(cors_origins),       0, 0 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key timeouts_keys[] = {
    { "headertimeout", conf_set_dur, F(headertimeout), 1, 7 * DAY },
    { "readtimeout",   conf_set_dur, F(readtimeout),   1, 7 * DAY },
    { "writetimeout",  conf_set_dur, F(writetimeout),  1, 7 * DAY },
    { "idletimeout",   conf_set_dur, F(idletimeout),   1, 7 * DAY },
    { "uploadtimeout", conf_set_dur, F(uploadtimeout), 1, 7 * DAY },
    { NULL, NULL, 0, 0, 0, 0 }
};

/* TCP_KEEPIDLE/KEEPINTVL stop at 32767 s and TCP_KEEPCNT at 127 in Linux
 * (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPCNT); setsockopt would refuse more. */
static const struct key network_keys[] = {
    { "networkchangedetection", conf_set_bool, F(networkchangedetection), 0, 0 },
    { "uploadpauseonchange",    conf_set_bool, F(uploadpauseonchange),    0, 0 },
    { "reconnectdelay",         conf_set_dur,  F(reconnectdelay),    0, 3600 },
    { "keepaliveinterval",      conf_set_dur,  F(keepaliveinterval), 1, 32767 },
    { "keepalivecount",         conf_set_int,  F(keepalivecount),    1, 127 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key uploads_keys[] = {
    { "shm_name",         conf_set_shm,  F(shm_name),         2, 0 },
    { "session_capacity", conf_set_int,  F(session_capacity), 1, 1 << 24 },
    { "sessiontimeout",   conf_set_dur,  F(sessiontimeout),   1, 366 * DAY },
    { "chunk_max_size",   conf_set_size, F(chunk_max_size),   1, LLONG_MAX },
    { "chunksize",        conf_set_size, F(chunk_size),       1, LLONG_MAX },
    { "resumable_min_size", conf_set_size, F(resumable_min_size), 0, LLONG_MAX },
    { "resumableuploadsenabled", conf_set_bool, F(resumable_uploads), 0, 0 },
    { "chunkeduploadsenabled",   conf_set_bool, F(chunked_uploads),   0, 0 },
    { "maxretries",       conf_set_int,  F(max_retries),      0, 10 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key cluster_keys[] = {
    { "node_id", conf_set_node_id, F(node_id), 1, 0 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key tls_keys[] = {
    { "certificate", conf_set_str, F(tls_cert), 0, 0 },
    { "key",         conf_set_str, F(tls_key),  0, 0 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key logging_keys[] = {
    { "target", conf_set_target, F(log_target), 1, 0 },
    { "level",  conf_set_level,  F(log_level),  0, 0 },
    { "access_log", conf_set_access_log, F(access_log), 1, 0 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct group groups[] = {
    { "server",   server_keys },   { "storage",  storage_keys },
    { "security", security_keys }, { "timeouts", timeouts_keys },
    { "network",  network_keys },  { "uploads",  uploads_keys },
    { "tls",      tls_keys },      { "logging",  logging_keys },
    { "cluster",  cluster_keys },
    { NULL, NULL }
};

/* ---- walking ---------------------------------------------------------- */

static int
load_group(struct ld *ld, const config_setting_t *g, const struct key *keys)
{
    const struct key *k;
    int               i, n = config_setting_length(g);

    if (!config_setting_is_group(g))
        return conf_fail(ld, g, "expected a group: %s: { ... };",
                         config_setting_name(g));
    for (i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, i);

        for (k = keys; k->name != NULL; k++)
            if (strcmp(k->name, config_setting_name(s)) == 0)
                break;
        if (k->name == NULL)
            return conf_fail(ld, s, "unknown key");
        if (k->set(ld, s, k) < 0)
            return -1;
    }
    return 0;
}

static int
load_root(struct ld *ld, const config_setting_t *root)
{
    const struct group *g;
    int                 i, n = config_setting_length(root);

    for (i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(root, i);

        for (g = groups; g->name != NULL; g++)
            if (strcmp(g->name, config_setting_name(s)) == 0)
                break;
        if (g->name == NULL)
            return conf_fail(ld, s, config_setting_is_group(s)
                             ? "unknown group"
                             : "unknown setting outside any group");
        if (load_group(ld, s, g->keys) < 0)
            return -1;
    }
    return 0;
}

/* ---- whole-config checks ---------------------------------------------- */

static const config_setting_t *
first_of(const config_t *cfg, const char *a, const char *b, const char *c)
{
    const config_setting_t *s = config_lookup(cfg, a);

    if (s == NULL && b != NULL)
        s = config_lookup(cfg, b);
    if (s == NULL && c != NULL)
        s = config_lookup(cfg, c);
    return s;
}

static int
check_readable(struct ld *ld, const config_t *cfg, const char *key,
               const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0)
        return fail_at(ld, config_lookup(cfg, key), key, "cannot read %s: %s",
                       path, strerror(errno));
    close(fd);
    return 0;
}

static int
check_tls(struct ld *ld, const config_t *cfg)
{
    const struct conf *c = ld->c;
    char               key[48];
    size_t             i;

    for (i = 0; i < c->nlisten; i++) {
        if (!c->listen[i].tls)
            continue;
        if (c->tls_cert[0] == '\0' || c->tls_key[0] == '\0') {
            const config_setting_t *l = config_lookup(cfg, "server.listen");

            snprintf(key, sizeof(key), "server.listen[%zu]", i);
            return fail_at(ld, l ? config_setting_get_elem(l, i) : NULL, key,
                           "TLS listener needs tls.certificate and tls.key");
        }
        /* The files matter only when something listens with TLS. */
        if (check_readable(ld, cfg, "tls.certificate", c->tls_cert) < 0 ||
            check_readable(ld, cfg, "tls.key", c->tls_key) < 0)
            return -1;
        break;
    }
    return 0;
}

static int
check_whole(struct ld *ld, const config_t *cfg)
{
    const struct conf *c = ld->c;

    if (c->nsecrets == 0)
        return fail_at(ld, first_of(cfg, "security.secrets",
                                    "security.secret_files", "security"),
                       "security.secrets", "at least one secret is required "
                       "(security.secrets or security.secret_files)");
    /* Every numbered chunk but the last is exactly chunksize bytes: a
     * size over the chunk limit would refuse them all with 413. Left to
     * its default, it follows a smaller limit, so a configuration that
     * lowered chunk_max_size before chunksize existed stays valid. */
    if (c->chunk_size > c->chunk_max_size) {
        if (config_lookup(cfg, "uploads.chunksize") != NULL)
            return fail_at(ld, config_lookup(cfg, "uploads.chunksize"),
                           "uploads.chunksize", "must not exceed "
                           "uploads.chunk_max_size (%llu > %llu bytes)",
                           (unsigned long long)c->chunk_size,
                           (unsigned long long)c->chunk_max_size);
        ld->c->chunk_size = c->chunk_max_size;
    }
    if (config_lookup(cfg, "cluster") != NULL && c->node_id[0] == '\0')
        return fail_at(ld, config_lookup(cfg, "cluster"), "cluster.node_id",
                       "a cluster section needs this node's node_id");
    /* Uploads are published by rename from staging into storage. */
    if (strcmp(c->storage_dir, c->staging_dir) == 0)
        return fail_at(ld, first_of(cfg, "storage.staging", "storage.dir",
                                    NULL),
                       "storage.staging", "must differ from storage.dir");
    return check_tls(ld, cfg);
}

/* ---- entry points ----------------------------------------------------- */

void
conf_defaults(struct conf *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->listen[0].addr, sizeof(c->listen[0].addr), "127.0.0.1");
    c->listen[0].port = 8080;
    c->nlisten = 1;
    c->max_connections = 4096;
    c->max_conns_per_addr = 512;
    c->max_uploads_per_addr = 128;
    c->shutdown_grace = 30;
    snprintf(c->url_prefix, sizeof(c->url_prefix), "/");
    snprintf(c->storage_dir, sizeof(c->storage_dir), "./var/storage");
    snprintf(c->staging_dir, sizeof(c->staging_dir), "./var/staging");
    c->max_upload_size = 1ULL << 30;
    c->min_free_bytes = 64ULL << 20;
    c->file_mode = 0644;
    c->dir_mode = 0755;
    c->sync_mode = CONF_SYNC_ALWAYS;
    c->sync_window_ms = 2;
    c->sync_batch_max = 64;
    c->token_max_lifetime = 86400;
    snprintf(c->cors_origins[0], sizeof(c->cors_origins[0]), "*");
    c->ncors_origins = 1;
    c->headertimeout = 20;
    c->readtimeout = 300;
    c->writetimeout = 300;
    c->idletimeout = 600;
    c->uploadtimeout = 3600;
    c->networkchangedetection = true;
    c->uploadpauseonchange = true;
    c->reconnectdelay = 2;
    c->keepaliveinterval = 30;
    c->keepalivecount = 4;
    snprintf(c->shm_name, sizeof(c->shm_name), "/hmac-file-server");
    c->session_capacity = 4096;
    c->sessiontimeout = 86400;
    c->chunk_max_size = 64ULL << 20;
    c->chunk_size = 5ULL << 20;
    c->resumable_min_size = 256ULL << 10;
    c->resumable_uploads = true;
    c->chunked_uploads = true;
    c->max_retries = 3;
    snprintf(c->log_target, sizeof(c->log_target), "stderr");
    c->log_level = LOG_LVL_INFO;
    snprintf(c->access_log, sizeof(c->access_log), "off");
}

static int
read_error(struct ld *ld, const config_t *cfg, const char *path)
{
    char        buf[2 * CONF_PATH_MAX];
    const char *file = resolve_file(ld, config_error_file(cfg), buf,
                                    sizeof(buf));
    struct stat st;
    int         e = EIO;
    FILE       *f;

    if (config_error_type(cfg) == CONFIG_ERR_FILE_IO) {
        /* libconfig keeps no errno; ask again to say why. */
        if (path != NULL && (f = fopen(path, "re")) == NULL)
            e = errno;
        else if (path != NULL) {
            if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode))
                e = EISDIR;
            fclose(f);
        }
        snprintf(ld->err, ld->errlen, "%s: cannot read: %s", ld->name,
                 strerror(e));
        return -1;
    }
    snprintf(ld->err, ld->errlen, "%s:%d: %s", file ? file : ld->name,
             config_error_line(cfg), config_error_text(cfg));
    return -1;
}

static int
load(const char *path, const char *text, const char *name, struct conf *out,
     char *err, size_t errlen)
{
    struct ld   ld = { .name = name, .text = text, .err = err,
                       .errlen = errlen };
    config_t    cfg;
    const char *slash = strrchr(name, '/');
    int         rc;

    if ((ld.c = malloc(sizeof(*ld.c))) == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    conf_defaults(ld.c);
    snprintf(ld.c->source, sizeof(ld.c->source), "%s", name);
    config_init(&cfg);
    /* @include is relative to the including file, not to our cwd. */
    if (slash != NULL) {
        snprintf(ld.incdir, sizeof(ld.incdir), "%.*s",
                 (int)(slash - name + (slash == name)), name);
        config_set_include_dir(&cfg, ld.incdir);
    }
    if (!(path ? config_read_file(&cfg, path) : config_read_string(&cfg, text)))
        rc = read_error(&ld, &cfg, path);
    else if (load_root(&ld, config_root_setting(&cfg)) < 0)
        rc = -1;
    else
        rc = check_whole(&ld, &cfg);
    if (rc == 0)
        memcpy(out, ld.c, sizeof(*out));
    config_destroy(&cfg);
    drop_text(&ld);
    explicit_bzero(ld.c, sizeof(*ld.c));
    free(ld.c);
    return rc;
}

int
conf_load(const char *path, struct conf *c, char *err, size_t errlen)
{
    return load(path, NULL, path, c, err, errlen);
}

int
conf_load_string(const char *text, const char *name, struct conf *c,
                 char *err, size_t errlen)
{
    return load(NULL, text, name != NULL ? name : "<string>", c, err, errlen);
}

/* Checks the loader cannot make (a user exists, a directory is writable as
 * that user) happen later, in the master; this gives their messages the same
 * FILE:LINE: KEY form by finding the key in the file again. A key left at
 * its default points at its group, or at the file's top. */
int
conf_key_error(const struct conf *c, const char *key, char *err,
               size_t errlen, const char *fmt, ...)
{
    struct ld               ld = { .name = c->source, .err = err,
                                   .errlen = errlen };
    const config_setting_t *s = NULL;
    const char             *slash = strrchr(c->source, '/');
    char                    group[64];
    config_t                cfg;
    va_list                 ap;

    config_init(&cfg);
    if (slash != NULL) {
        snprintf(ld.incdir, sizeof(ld.incdir), "%.*s",
                 (int)(slash - c->source + (slash == c->source)), c->source);
        config_set_include_dir(&cfg, ld.incdir);
    }
    if (c->source[0] != '\0' && access(c->source, R_OK) == 0
        && config_read_file(&cfg, c->source)) {
        snprintf(group, sizeof(group), "%.*s", (int)strcspn(key, "."), key);
        if ((s = config_lookup(&cfg, key)) == NULL)
            s = config_lookup(&cfg, group);
    }
    va_start(ap, fmt);
    vfail(&ld, s, key, fmt, ap);
    va_end(ap);
    config_destroy(&cfg);
    return -1;
}
