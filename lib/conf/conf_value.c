/* conf_value.c: from one libconfig setting to one typed field of struct
 * conf, with the message when it does not fit: integers (and libconfig
 * 1.5's 32-bit wrap), booleans, sizes and durations with units, strings,
 * the URL prefix, shm name, log target and level, file modes, listen
 * addresses, secrets and secret files, CORS origins. The table that says
 * which setter and limits each key has is in conf.c. */
#include "lib/conf/conf_value.h"
#include "lib/util/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_FILE_MAX 4096            /* read cap; longer is refused */

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
        return conf_fail(ld, s, "expected an integer");
    text = conf_source_text(ld, s);
    if (text != NULL &&
        conf_line_has_wrapped_int(text, config_setting_source_line(s)))
        return conf_fail(ld, s, "integer does not fit in 32 bits; write it "
                         "with an L suffix or as a string with a unit "
                         "(\"5G\")");
    *v = config_setting_get_int(s);
    return 0;
}

static int
check_range(struct ld *ld, const config_setting_t *s, const struct key *k,
            long long v, const char *unit)
{
    if (v < 0 && k->min >= 0)
        return conf_fail(ld, s, "must not be negative");
    if (v < k->min)
        return conf_fail(ld, s, "must be at least %lld%s", k->min, unit);
    if (v > k->max)
        return conf_fail(ld, s, "must be at most %lld%s", k->max, unit);
    return 0;
}

int
conf_set_int(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    long long v = 0;

    if (get_integer(ld, s, &v) < 0 || check_range(ld, s, k, v, "") < 0)
        return -1;
    *FIELD(ld, k, int) = (int)v;
    return 0;
}

int
conf_set_bool(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return conf_fail(ld, s, "expected true or false");
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
        return conf_fail(ld, s, "bad %s \"%.64s\" (want %s)", what, str, want);
    if (rc == -2 || u > LLONG_MAX)
        return conf_fail(ld, s, "%s \"%.64s\" is too large", what, str);
    *v = (long long)u;
    return 0;
}

int
conf_set_size(struct ld *ld, const config_setting_t *s, const struct key *k)
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

int
conf_set_dur(struct ld *ld, const config_setting_t *s, const struct key *k)
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
        return conf_fail(ld, s, "expected a string");
    *out = config_setting_get_string(s);
    len = strlen(*out);
    if (len >= size)
        return conf_fail(ld, s, "longer than %zu bytes", size - 1);
    if ((long long)len < min)
        return conf_fail(ld, s, "must not be empty");
    return 0;
}

int
conf_set_str(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char *v = NULL;

    if (get_string(ld, s, k->size, k->min, &v) < 0)
        return -1;
    memcpy(FIELD(ld, k, char), v, strlen(v) + 1);
    return 0;
}

/* The prefix is matched byte for byte against request paths before the MAC
 * is checked, so only plain unreserved characters make sense in it. */
int
conf_set_prefix(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char *v, *p;
    size_t      len;

    if (conf_set_str(ld, s, k) < 0)
        return -1;
    v = ld->c->url_prefix;
    len = strlen(v);
    if (len == 0 || v[0] != '/' || v[len - 1] != '/')
        return conf_fail(ld, s, "must start and end with '/' (e.g. "
                         "\"/upload/\")");
    for (p = v; *p != '\0'; p++)
        if (!isalnum((unsigned char)*p) && strchr("-._~/", *p) == NULL)
            return conf_fail(ld, s, "character 0x%02x not allowed",
                             (unsigned char)*p);
    if (strstr(v, "//") != NULL || strstr(v, "/./") != NULL ||
        strstr(v, "/../") != NULL)
        return conf_fail(ld, s, "empty, \".\" or \"..\" path segment");
    return 0;
}

int
conf_set_shm(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char *v = NULL;

    if (conf_set_str(ld, s, k) < 0)
        return -1;
    v = ld->c->shm_name;
    /* shm_open(3): portable names are "/" plus at least one character and
     * no further slash. */
    if (v[0] != '/' || v[1] == '\0' || strchr(v + 1, '/') != NULL)
        return conf_fail(ld, s, "must be \"/name\" with no other '/'");
    return 0;
}

/* cluster.node_id names this node in the owner files other nodes read
 * (lib/store/owner.h): a short plain name. */
int
conf_set_node_id(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    if (conf_set_str(ld, s, k) < 0)
        return -1;
    for (const char *p = ld->c->node_id; *p != '\0'; p++)
        if (!isalnum((unsigned char)*p) && strchr("._-", *p) == NULL)
            return conf_fail(ld, s, "character 0x%02x not allowed (letters, "
                             "digits, '.', '_', '-')", (unsigned char)*p);
    return 0;
}

/* A file target must contain a '/' so a typo such as "sylog" is an error
 * rather than a log file quietly created in the working directory. */
int
conf_set_target(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char *v = NULL;

    if (conf_set_str(ld, s, k) < 0)
        return -1;
    v = ld->c->log_target;
    if (strcmp(v, "stderr") != 0 && strcmp(v, "syslog") != 0 &&
        strchr(v, '/') == NULL)
        return conf_fail(ld, s, "want \"stderr\", \"syslog\" or a path "
                         "containing '/'");
    return 0;
}

/* The access log: "off", "syslog" (/dev/log), "syslog:/SOCKET" (another
 * datagram socket), or a file path with a '/' (as for logging.target). */
int
conf_set_access_log(struct ld *ld, const config_setting_t *s,
                    const struct key *k)
{
    const char *v = NULL;

    if (conf_set_str(ld, s, k) < 0)
        return -1;
    v = ld->c->access_log;
    if (strcmp(v, "off") == 0 || strcmp(v, "syslog") == 0)
        return 0;
    if (strncmp(v, "syslog:", 7) == 0 && v[7] != '/')
        return conf_fail(ld, s, "want \"syslog:\" followed by the absolute "
                         "path of a datagram socket");
    if (strncmp(v, "syslog:", 7) != 0 && strchr(v, '/') == NULL)
        return conf_fail(ld, s, "want \"off\", \"syslog\", "
                         "\"syslog:/SOCKET\" or a path containing '/'");
    return 0;
}

int
conf_set_level(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    enum log_level lvl;
    const char    *v = NULL;

    (void)k;
    if (get_string(ld, s, 16, 1, &v) < 0)
        return -1;
    if (log_level_parse(v, &lvl) < 0)
        return conf_fail(ld, s, "unknown level \"%s\" (error, warn, info, "
                         "debug)", v);
    ld->c->log_level = (int)lvl;
    return 0;
}

int
conf_set_sync(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    static const char *const names[] = { "always", "batch", "off" };
    const char *v = NULL;

    (void)k;
    if (get_string(ld, s, 16, 1, &v) < 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(v, names[i]) == 0) {
            ld->c->sync_mode = i;   /* the order of enum conf_sync */
            return 0;
        }
    return conf_fail(ld, s, "unknown mode \"%s\" (always, batch, off)", v);
}

/* A file or directory mode as an octal string ("0640"). An integer is
 * refused: libconfig reads 0640 as decimal 640, a mode nobody meant. k->min
 * holds the owner bits the daemon itself needs (rw for files, rwx for
 * directories). */
int
conf_set_mode(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    const char   *v = NULL, *p;
    unsigned long m = 0;

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return conf_fail(ld, s, "write the mode as an octal string such as "
                         "\"0640\" (libconfig reads 0640 as decimal 640)");
    if (get_string(ld, s, 16, 1, &v) < 0)
        return -1;
    for (p = v; *p >= '0' && *p <= '7'; p++)
        m = m * 8 + (unsigned long)(*p - '0');
    if (*p != '\0' || p - v > 4)
        return conf_fail(ld, s, "bad mode \"%s\" (want 3 or 4 octal digits, "
                         "such as \"0640\")", v);
    if (m & ~0777UL)
        return conf_fail(ld, s, "setuid, setgid and sticky bits are not "
                         "allowed");
    if ((m & (unsigned long)k->min) != (unsigned long)k->min)
        return conf_fail(ld, s, "the owner needs at least %04llo (the daemon "
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
        return conf_fail(ld, s, "expected a list of strings [ \"...\", ... ]");
    *n = (size_t)config_setting_length(s);
    if (*n > max)
        return conf_fail(ld, s, "too many entries (%zu, at most %zu)", *n,
                         max);
    for (i = 0; i < *n; i++)
        if (config_setting_type(config_setting_get_elem(s, i)) !=
            CONFIG_TYPE_STRING)
            return conf_fail(ld, config_setting_get_elem(s, i),
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

int
conf_set_listen(struct ld *ld, const config_setting_t *s, const struct key *k)
{
    struct conf *c = ld->c;
    const char  *why;
    size_t       n, i, j;

    (void)k;
    if (get_list(ld, s, CONF_MAX_LISTEN, &n) < 0)
        return -1;
    if (n == 0)
        return conf_fail(ld, s, "at least one listen address is required");
    for (i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, i);

        why = parse_listen(config_setting_get_string(e), &c->listen[i]);
        if (why != NULL)
            return conf_fail(ld, e, "%s", why);
        for (j = 0; j < i; j++)
            if (c->listen[j].port == c->listen[i].port &&
                strcmp(c->listen[j].addr, c->listen[i].addr) == 0)
                return conf_fail(ld, e, "duplicate listen address");
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
        return conf_fail(ld, e, "too many secrets (at most %d in secrets and "
                         "secret_files together)", CONF_MAX_SECRETS);
    if (len == 0)
        return conf_fail(ld, e, "empty secret");
    if (len > sizeof(sec->key))
        return conf_fail(ld, e, "secret longer than %zu bytes",
                         sizeof(sec->key));
    sec = &ld->c->secrets[ld->c->nsecrets++];
    memcpy(sec->key, key, len);
    sec->len = len;
    return 0;
}

int
conf_set_secrets(struct ld *ld, const config_setting_t *s, const struct key *k)
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

int
conf_set_secret_files(struct ld *ld, const config_setting_t *s,
                      const struct key *k)
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
            rc = conf_fail(ld, e, "cannot read secret file %s: %s", path,
                           errno == EINVAL ? "not a regular file"
                                           : strerror(errno));
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
int
conf_set_origins(struct ld *ld, const config_setting_t *s, const struct key *k)
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
            return conf_fail(ld, e, "want \"*\" or scheme://host[:port]");
        for (h = v; *h != '\0'; h++)
            if (*h <= 0x20 || *h >= 0x7f)
                return conf_fail(ld, e, "control character or space");
        memcpy(ld->c->cors_origins[i], v, strlen(v) + 1);
    }
    ld->c->ncors_origins = n;
    return 0;
}
