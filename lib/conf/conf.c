/* conf.c: libconfig reader, table-driven, checked key by key and then whole.
 *
 * Every setting is dispatched through one table (group -> key -> setter), so
 * an unknown group or key is found in the same walk that assigns the known
 * ones, and every message is built from the setting itself: file and line
 * from libconfig, "group.key[i]" from the setting's path, never its value for
 * secrets. The result is assembled in a private copy and handed out only when
 * complete, so a failed reload leaves the caller's running config untouched. */
#include "lib/conf/conf.h"
#include "lib/util/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY             86400LL
#define SECRET_FILE_MAX 4096            /* read cap; longer is refused */
#define SOURCE_MAX      (1 << 20)       /* config text scanned for big ints */

struct ld {
    struct conf *c;
    const char  *name;          /* for settings libconfig gives no file */
    const char  *text;          /* conf_load_string's text */
    char         incdir[CONF_PATH_MAX];     /* "" = none */
    char         scan_file[2 * CONF_PATH_MAX];  /* text cached in scan_text */
    char        *scan_text;
    char        *err;
    size_t       errlen;
};

struct key;
typedef int setter_fn(struct ld *, const config_setting_t *,
                      const struct key *);

struct key {
    const char *name;
    setter_fn  *set;
    size_t      off, size;      /* field in struct conf */
    long long   min, max;       /* numbers: range; strings: min length */
};

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

static int __attribute__((format(printf, 3, 4)))
fail(struct ld *ld, const config_setting_t *s, const char *fmt, ...)
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

static const char *
source_text(struct ld *ld, const config_setting_t *s)
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

static bool
line_has_wrapped_int(const char *p, unsigned line)
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

/* ---- scalar setters --------------------------------------------------- */

#define FIELD(ld, k, type) ((type *)(void *)((char *)(ld)->c + (k)->off))

static int
get_integer(struct ld *ld, const config_setting_t *s, long long *v)
{
    const char *text;

    if (config_setting_type(s) == CONFIG_TYPE_INT64) {
        *v = config_setting_get_int64(s);
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_INT)
        return fail(ld, s, "expected an integer");
    text = source_text(ld, s);
    if (text != NULL &&
        line_has_wrapped_int(text, config_setting_source_line(s)))
        return fail(ld, s, "integer does not fit in 32 bits; write it with "
                    "an L suffix or as a string with a unit (\"5G\")");
    *v = config_setting_get_int(s);
    return 0;
}

static int
check_range(struct ld *ld, const config_setting_t *s, const struct key *k,
            long long v, const char *unit)
{
    if (v < 0 && k->min >= 0)
        return fail(ld, s, "must not be negative");
    if (v < k->min)
        return fail(ld, s, "must be at least %lld%s", k->min, unit);
    if (v > k->max)
        return fail(ld, s, "must be at most %lld%s", k->max, unit);
    return 0;
}

static int
set_int(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    long long v = 0;

    if (get_integer(ld, s, &v) < 0 || check_range(ld, s, k, v, "") < 0)
        return -1;
    *FIELD(ld, k, int) = (int)v;
    return 0;
}

static int
set_bool(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return fail(ld, s, "expected true or false");
    *FIELD(ld, k, bool) = config_setting_get_bool(s) != 0;
    return 0;
}

/* A unit suffix and what it multiplies by; tables end with a NULL name. */
struct unit {
    const char        *name;
    unsigned long long mult;
};

/* Every spelling is binary: the seed's clients and the Go hmac-file-server
 * its examples come from compute "5MB" as 5 * 1024 * 1024, and a chunk
 * size must agree with the clients byte for byte. "" and "B" are bytes. */
static const struct unit size_units[] = {
    { "", 1 }, { "b", 1 },
    { "k", 1ULL << 10 }, { "kb", 1ULL << 10 }, { "kib", 1ULL << 10 },
    { "m", 1ULL << 20 }, { "mb", 1ULL << 20 }, { "mib", 1ULL << 20 },
    { "g", 1ULL << 30 }, { "gb", 1ULL << 30 }, { "gib", 1ULL << 30 },
    { "t", 1ULL << 40 }, { "tb", 1ULL << 40 }, { "tib", 1ULL << 40 },
    { NULL, 0 }
};

/* Lower case only: "5M" would read as minutes to some and months to
 * others. */
static const struct unit dur_units[] = {
    { "", 1 }, { "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", DAY },
    { NULL, 0 }
};

/* "<digits><unit>", the unit one of units' names (case-insensitive when
 * fold). Strings only: a sign, space or fraction is refused outright.
 * 0, -1 malformed, -2 too large. */
static int
parse_scaled(const char *str, const struct unit *units, bool fold,
             unsigned long long *out)
{
    unsigned long long v;
    const struct unit *u;
    char              *end;

    if (!isdigit((unsigned char)str[0]))
        return -1;
    errno = 0;
    v = strtoull(str, &end, 10);
    if (errno == ERANGE)
        return -2;
    for (u = units; u->name != NULL; u++)
        if ((fold ? strcasecmp(end, u->name) : strcmp(end, u->name)) == 0)
            break;
    if (u->name == NULL)
        return -1;
    if (v > ULLONG_MAX / u->mult)
        return -2;
    *out = v * u->mult;
    return 0;
}

static int
get_scaled(struct ld *ld, const config_setting_t *s, const struct unit *units,
           bool fold, const char *what, const char *want, long long *v)
{
    unsigned long long u;
    const char        *str;
    int                rc;

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return get_integer(ld, s, v);
    str = config_setting_get_string(s);
    rc = parse_scaled(str, units, fold, &u);
    if (rc == -1)
        return fail(ld, s, "bad %s \"%.64s\" (want %s)", what, str, want);
    if (rc == -2 || u > LLONG_MAX)
        return fail(ld, s, "%s \"%.64s\" is too large", what, str);
    *v = (long long)u;
    return 0;
}

static int
set_size(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    long long v = 0;

    if (get_scaled(ld, s, size_units, true, "size", "bytes, or digits and "
                   "K, M, G, T, KB, MB, GB, TB, KiB...: all binary, "
                   "1K = 1KB = 1024", &v) < 0 ||
        check_range(ld, s, k, v, " bytes") < 0)
        return -1;
    *FIELD(ld, k, uint64_t) = (uint64_t)v;
    return 0;
}

static int
set_dur(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    long long v = 0;

    if (get_scaled(ld, s, dur_units, false, "duration",
                   "seconds, or digits and s, m, h or d", &v) < 0 ||
        check_range(ld, s, k, v, " seconds") < 0)
        return -1;
    *FIELD(ld, k, int) = (int)v;
    return 0;
}

static int
get_string(struct ld *ld, const config_setting_t *s, size_t size,
           long long min, const char **out)
{
    size_t len;

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(ld, s, "expected a string");
    *out = config_setting_get_string(s);
    len = strlen(*out);
    if (len >= size)
        return fail(ld, s, "longer than %zu bytes", size - 1);
    if ((long long)len < min)
        return fail(ld, s, "must not be empty");
    return 0;
}

static int
set_str(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char *v = NULL;

    if (get_string(ld, s, k->size, k->min, &v) < 0)
        return -1;
    memcpy(FIELD(ld, k, char), v, strlen(v) + 1);
    return 0;
}

/* The prefix is matched byte for byte against request paths before the MAC
 * is checked, so only plain unreserved characters make sense in it. */
static int
set_prefix(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char *v, *p;
    size_t      len;

    if (set_str(ld, s, k) < 0)
        return -1;
    v = ld->c->url_prefix;
    len = strlen(v);
    if (len == 0 || v[0] != '/' || v[len - 1] != '/')
        return fail(ld, s, "must start and end with '/' (e.g. \"/upload/\")");
    for (p = v; *p != '\0'; p++)
        if (!isalnum((unsigned char)*p) && strchr("-._~/", *p) == NULL)
            return fail(ld, s, "character 0x%02x not allowed",
                        (unsigned char)*p);
    if (strstr(v, "//") != NULL || strstr(v, "/./") != NULL ||
        strstr(v, "/../") != NULL)
        return fail(ld, s, "empty, \".\" or \"..\" path segment");
    return 0;
}

static int
set_shm(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char *v = NULL;

    if (set_str(ld, s, k) < 0)
        return -1;
    v = ld->c->shm_name;
    /* shm_open(3): portable names are "/" plus at least one character and
     * no further slash. */
    if (v[0] != '/' || v[1] == '\0' || strchr(v + 1, '/') != NULL)
        return fail(ld, s, "must be \"/name\" with no other '/'");
    return 0;
}

/* A file target must contain a '/' so a typo such as "sylog" is an error
 * rather than a log file quietly created in the working directory. */
static int
set_target(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char *v = NULL;

    if (set_str(ld, s, k) < 0)
        return -1;
    v = ld->c->log_target;
    if (strcmp(v, "stderr") != 0 && strcmp(v, "syslog") != 0 &&
        strchr(v, '/') == NULL)
        return fail(ld, s, "want \"stderr\", \"syslog\" or a path "
                    "containing '/'");
    return 0;
}

/* The access log: "off", "syslog" (/dev/log), "syslog:/SOCKET" (another
 * datagram socket), or a file path with a '/' (as for logging.target). */
static int
set_access_log(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char *v = NULL;

    if (set_str(ld, s, k) < 0)
        return -1;
    v = ld->c->access_log;
    if (strcmp(v, "off") == 0 || strcmp(v, "syslog") == 0)
        return 0;
    if (strncmp(v, "syslog:", 7) == 0 && v[7] != '/')
        return fail(ld, s, "want \"syslog:\" followed by the absolute path "
                    "of a datagram socket");
    if (strncmp(v, "syslog:", 7) != 0 && strchr(v, '/') == NULL)
        return fail(ld, s, "want \"off\", \"syslog\", \"syslog:/SOCKET\" "
                    "or a path containing '/'");
    return 0;
}

static int
set_level(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    enum log_level lvl;
    const char    *v = NULL;

    (void)k;
    if (get_string(ld, s, 16, 1, &v) < 0)
        return -1;
    if (log_level_parse(v, &lvl) < 0)
        return fail(ld, s, "unknown level \"%s\" (error, warn, info, debug)",
                    v);
    ld->c->log_level = (int)lvl;
    return 0;
}

/* A file or directory mode as an octal string ("0640"). An integer is
 * refused: libconfig reads 0640 as decimal 640, a mode nobody meant. k->min
 * holds the owner bits the daemon itself needs (rw for files, rwx for
 * directories). */
static int
set_mode(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char   *v = NULL, *p;
    unsigned long m = 0;

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(ld, s, "write the mode as an octal string such as "
                    "\"0640\" (libconfig reads 0640 as decimal 640)");
    if (get_string(ld, s, 16, 1, &v) < 0)
        return -1;
    for (p = v; *p >= '0' && *p <= '7'; p++)
        m = m * 8 + (unsigned long)(*p - '0');
    if (*p != '\0' || p - v > 4)
        return fail(ld, s, "bad mode \"%s\" (want 3 or 4 octal digits, "
                    "such as \"0640\")", v);
    if (m & ~0777UL)
        return fail(ld, s, "setuid, setgid and sticky bits are not allowed");
    if ((m & (unsigned long)k->min) != (unsigned long)k->min)
        return fail(ld, s, "the owner needs at least %04llo (the daemon "
                    "writes %s)", (unsigned long long)k->min,
                    k->min == 0700 ? "into it" : "it");
    *FIELD(ld, k, unsigned) = (unsigned)m;
    return 0;
}

/* ---- list setters ----------------------------------------------------- */

static int
get_list(struct ld *ld, const config_setting_t *s, size_t max, size_t *n)
{
    size_t i;

    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return fail(ld, s, "expected a list of strings [ \"...\", ... ]");
    *n = (size_t)config_setting_length(s);
    if (*n > max)
        return fail(ld, s, "too many entries (%zu, at most %zu)", *n, max);
    for (i = 0; i < *n; i++)
        if (config_setting_type(config_setting_get_elem(s, i)) !=
            CONFIG_TYPE_STRING)
            return fail(ld, config_setting_get_elem(s, i),
                        "expected a string");
    return 0;
}

static const char *
parse_port(const char *p, int *port)
{
    long v = 0;
    int  nd = 0;

    for (; isdigit((unsigned char)*p) && nd < 6; p++, nd++)
        v = v * 10 + (*p - '0');
    if (nd == 0 || *p != '\0')
        return "port is not a decimal number";
    if (v < 1 || v > 65535)
        return "port must be 1..65535";
    *port = (int)v;
    return NULL;
}

/* "[tls:]ADDR:PORT", ADDR numeric IPv4 or bracketed IPv6: names would need a
 * resolver at startup and could bind somewhere else after a DNS change. */
static const char *
parse_listen(const char *v, struct conf_listen *l)
{
    char            host[64];
    const char     *colon, *why;
    unsigned char   bin[16];
    int             af = AF_INET;
    size_t          hl;

    memset(l, 0, sizeof(*l));
    if (strncmp(v, "tls:", 4) == 0) {
        l->tls = true;
        v += 4;
    }
    if (v[0] == '[') {
        af = AF_INET6;
        v++;
        if ((colon = strchr(v, ']')) == NULL || colon[1] != ':')
            return "want [IPv6]:PORT";
        hl = (size_t)(colon - v);
        colon++;
    } else {
        if ((colon = strrchr(v, ':')) == NULL)
            return "want ADDR:PORT";
        hl = (size_t)(colon - v);
        if (memchr(v, ':', hl) != NULL)
            return "IPv6 addresses need brackets: [ADDR]:PORT";
    }
    if (hl == 0 || hl >= sizeof(host))
        return "missing or overlong address";
    memcpy(host, v, hl);
    host[hl] = '\0';
    if (inet_pton(af, host, bin) != 1)
        return "address must be a numeric IPv4 or IPv6 address";
    inet_ntop(af, bin, l->addr, sizeof(l->addr));
    if ((why = parse_port(colon + 1, &l->port)) != NULL)
        return why;
    return NULL;
}

static int
set_listen(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    struct conf *c = ld->c;
    const char  *why;
    size_t       n, i, j;

    (void)k;
    if (get_list(ld, s, CONF_MAX_LISTEN, &n) < 0)
        return -1;
    if (n == 0)
        return fail(ld, s, "at least one listen address is required");
    for (i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, i);

        why = parse_listen(config_setting_get_string(e), &c->listen[i]);
        if (why != NULL)
            return fail(ld, e, "%s", why);
        for (j = 0; j < i; j++)
            if (c->listen[j].port == c->listen[i].port &&
                strcmp(c->listen[j].addr, c->listen[i].addr) == 0)
                return fail(ld, e, "duplicate listen address");
    }
    c->nlisten = n;
    return 0;
}

static int
add_secret(struct ld *ld, const config_setting_t *e, const void *key,
           size_t len)
{
    struct conf_secret *sec;

    if (ld->c->nsecrets == CONF_MAX_SECRETS)
        return fail(ld, e, "too many secrets (at most %d in secrets and "
                    "secret_files together)", CONF_MAX_SECRETS);
    if (len == 0)
        return fail(ld, e, "empty secret");
    if (len > sizeof(sec->key))
        return fail(ld, e, "secret longer than %zu bytes", sizeof(sec->key));
    sec = &ld->c->secrets[ld->c->nsecrets++];
    memcpy(sec->key, key, len);
    sec->len = len;
    return 0;
}

static int
set_secrets(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char *v = NULL;
    size_t      n, i;

    (void)k;
    if (get_list(ld, s, CONF_MAX_SECRETS, &n) < 0)
        return -1;
    for (i = 0; i < n; i++) {
        v = config_setting_get_string(config_setting_get_elem(s, i));
        if (add_secret(ld, config_setting_get_elem(s, i), v, strlen(v)) < 0)
            return -1;
    }
    return 0;
}

/* Reads at most SECRET_FILE_MAX bytes into buf; -1 with errno on failure
 * (EINVAL: not a regular file, EFBIG: too large to be a secret). */
static ssize_t
read_secret_file(const char *path, unsigned char *buf)
{
    struct stat st;
    ssize_t     n, got = 0;
    int         fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), e = 0;

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0)
        e = errno;
    else if (!S_ISREG(st.st_mode))
        e = EINVAL;
    else if (st.st_size > SECRET_FILE_MAX)
        e = EFBIG;
    while (e == 0 && got < SECRET_FILE_MAX &&
           (n = read(fd, buf + got, SECRET_FILE_MAX - got)) != 0) {
        if (n > 0)
            got += n;
        else if (errno != EINTR)
            e = errno;
    }
    close(fd);
    errno = e;
    return e != 0 ? -1 : got;
}

static int
set_secret_files(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    unsigned char buf[SECRET_FILE_MAX];
    const char   *path;
    ssize_t       len;
    size_t        n, i;
    int           rc = 0;

    (void)k;
    if (get_list(ld, s, CONF_MAX_SECRETS, &n) < 0)
        return -1;
    for (i = 0; i < n && rc == 0; i++) {
        const config_setting_t *e = config_setting_get_elem(s, i);

        path = config_setting_get_string(e);
        errno = 0;
        if ((len = read_secret_file(path, buf)) < 0) {
            rc = fail(ld, e, "cannot read secret file %s: %s", path,
                      errno == EINVAL ? "not a regular file" : strerror(errno));
            break;
        }
        /* Editors and `echo >` end the file with a newline; it is not part
         * of the secret the XMPP server was given. */
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        rc = add_secret(ld, e, buf, (size_t)len);
    }
    explicit_bzero(buf, sizeof(buf));
    return rc;
}

/* Origins are echoed into Access-Control-Allow-Origin: anything but "*" or
 * a bare scheme://host[:port] could smuggle header bytes or never match. */
static int
set_origins(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char *v = NULL, *h;
    size_t      n, i;

    (void)k;
    if (get_list(ld, s, CONF_MAX_ORIGINS, &n) < 0)
        return -1;
    for (i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, i);

        if (get_string(ld, e, sizeof(ld->c->cors_origins[0]), 1, &v) < 0)
            return -1;
        h = strncmp(v, "https://", 8) == 0 ? v + 8 :
            strncmp(v, "http://", 7) == 0 ? v + 7 : NULL;
        if (strcmp(v, "*") != 0 && (h == NULL || *h == '\0' ||
                                    strpbrk(h, "/?#") != NULL))
            return fail(ld, e, "want \"*\" or scheme://host[:port]");
        for (h = v; *h != '\0'; h++)
            if (*h <= 0x20 || *h >= 0x7f)
                return fail(ld, e, "control character or space");
        memcpy(ld->c->cors_origins[i], v, strlen(v) + 1);
    }
    ld->c->ncors_origins = n;
    return 0;
}

/* ---- the table -------------------------------------------------------- */

#define F(field) offsetof(struct conf, field), sizeof(((struct conf *)0)->field)

static const struct key server_keys[] = {
    { "listen",          set_listen, F(listen),          0, 0 },
    { "workers",         set_int,    F(workers),         0, 256 },
    { "max_connections", set_int,    F(max_connections), 1, 1 << 20 },
    { "user",            set_str,    F(user),            0, 0 },
    { "group",           set_str,    F(group),           0, 0 },
    { "pidfile",         set_str,    F(pidfile),         0, 0 },
    { "shutdown_grace",  set_dur,    F(shutdown_grace),  0, DAY },
    { "url_prefix",      set_prefix, F(url_prefix),      1, 0 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key storage_keys[] = {
    { "dir",             set_str,  F(storage_dir),     1, 0 },
    { "staging",         set_str,  F(staging_dir),     1, 0 },
    { "max_upload_size", set_size, F(max_upload_size), 1, LLONG_MAX },
    { "min_free",        set_size, F(min_free_bytes),  0, LLONG_MAX },
    /* min: the owner bits the daemon itself needs */
    { "file_mode",       set_mode, F(file_mode),       0600, 0 },
    { "dir_mode",        set_mode, F(dir_mode),        0700, 0 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key security_keys[] = {
    { "secrets",            set_secrets,      F(secrets),            0, 0 },
    { "secret_files",       set_secret_files, F(secrets),            0, 0 },
    { "token_max_lifetime", set_dur,          F(token_max_lifetime), 1,
      366 * DAY },
    { "cors_origins",       set_origins,      F(cors_origins),       0, 0 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key timeouts_keys[] = {
    { "readtimeout",   set_dur, F(readtimeout),   1, 7 * DAY },
    { "writetimeout",  set_dur, F(writetimeout),  1, 7 * DAY },
    { "idletimeout",   set_dur, F(idletimeout),   1, 7 * DAY },
    { "uploadtimeout", set_dur, F(uploadtimeout), 1, 7 * DAY },
    { NULL, NULL, 0, 0, 0, 0 }
};

/* TCP_KEEPIDLE/KEEPINTVL stop at 32767 s and TCP_KEEPCNT at 127 in Linux
 * (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPCNT); setsockopt would refuse more. */
static const struct key network_keys[] = {
    { "networkchangedetection", set_bool, F(networkchangedetection), 0, 0 },
    { "uploadpauseonchange",    set_bool, F(uploadpauseonchange),    0, 0 },
    { "reconnectdelay",         set_dur,  F(reconnectdelay),    0, 3600 },
    { "keepaliveinterval",      set_dur,  F(keepaliveinterval), 1, 32767 },
    { "keepalivecount",         set_int,  F(keepalivecount),    1, 127 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key uploads_keys[] = {
    { "shm_name",         set_shm,  F(shm_name),         2, 0 },
    { "session_capacity", set_int,  F(session_capacity), 1, 1 << 24 },
    { "sessiontimeout",   set_dur,  F(sessiontimeout),   1, 366 * DAY },
    { "chunk_max_size",   set_size, F(chunk_max_size),   1, LLONG_MAX },
    { "chunksize",        set_size, F(chunk_size),       1, LLONG_MAX },
    { "resumable_min_size", set_size, F(resumable_min_size), 0, LLONG_MAX },
    { "resumableuploadsenabled", set_bool, F(resumable_uploads), 0, 0 },
    { "chunkeduploadsenabled",   set_bool, F(chunked_uploads),   0, 0 },
    { "maxretries",       set_int,  F(max_retries),      0, 10 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key tls_keys[] = {
    { "certificate", set_str, F(tls_cert), 0, 0 },
    { "key",         set_str, F(tls_key),  0, 0 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct key logging_keys[] = {
    { "target", set_target, F(log_target), 1, 0 },
    { "level",  set_level,  F(log_level),  0, 0 },
    { "access_log", set_access_log, F(access_log), 1, 0 },
    { NULL, NULL, 0, 0, 0, 0 }
};

static const struct group groups[] = {
    { "server",   server_keys },   { "storage",  storage_keys },
    { "security", security_keys }, { "timeouts", timeouts_keys },
    { "network",  network_keys },  { "uploads",  uploads_keys },
    { "tls",      tls_keys },      { "logging",  logging_keys },
    { NULL, NULL }
};

/* ---- walking ---------------------------------------------------------- */

static int
load_group(struct ld *ld, const config_setting_t *g, const struct key *keys)
{
    const struct key *k;
    int               i, n = config_setting_length(g);

    if (!config_setting_is_group(g))
        return fail(ld, g, "expected a group: %s: { ... };",
                    config_setting_name(g));
    for (i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, i);

        for (k = keys; k->name != NULL; k++)
            if (strcmp(k->name, config_setting_name(s)) == 0)
                break;
        if (k->name == NULL)
            return fail(ld, s, "unknown key");
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
            return fail(ld, s, config_setting_is_group(s) ? "unknown group" :
                        "unknown setting outside any group");
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
    c->shutdown_grace = 30;
    snprintf(c->url_prefix, sizeof(c->url_prefix), "/");
    snprintf(c->storage_dir, sizeof(c->storage_dir), "./var/storage");
    snprintf(c->staging_dir, sizeof(c->staging_dir), "./var/staging");
    c->max_upload_size = 1ULL << 30;
    c->min_free_bytes = 64ULL << 20;
    c->file_mode = 0644;
    c->dir_mode = 0755;
    c->token_max_lifetime = 86400;
    snprintf(c->cors_origins[0], sizeof(c->cors_origins[0]), "*");
    c->ncors_origins = 1;
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
