/* accesslog.c: the request log's lines (where they go: lib/util/linesink).
 *
 * Secrets: the query string (where every signature lives) is never logged,
 * nor the Referer's. A tus or IETF-draft upload URL is a capability (its id
 * alone lets anyone append to or delete the upload), so only the first
 * ID_KEEP hex
 * digits of the id are logged: enough to match the lines of one upload, 80
 * bits short of being usable. Every byte a client chose is escaped (\xHH for
 * controls, quotes, backslashes and non-ASCII), so no client can end a line
 * or a field early. */
#define _GNU_SOURCE
#include "worker/accesslog.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/conf/conf.h"
#include "lib/util/linesink.h"
#include "worker/conn.h"

#define PATH_CAP     1024      /* escaped output per field, at most */
#define AGENT_CAP    512
#define SID_CAP      160
#define ID_KEEP      12        /* hex digits of a tus id: 48 of 128 bits */
#define TUS_RESOURCE ".tus/"
#define IETF_RESOURCE ".ietf/"     /* worker/ietf_parse.h */

struct out {
    char  *b;
    size_t n, cap;          /* cap leaves room for the final newline */
};

static void
put(struct out *o, const char *s, size_t len)
{
    if (len > o->cap - o->n)
        len = o->cap - o->n;
    memcpy(o->b + o->n, s, len);
    o->n += len;
}

static void
puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Numbers by hand: printf's machinery would be the costliest part of a
 * line. `width` pads with zeros (the milliseconds). */
static void
put_u64(struct out *o, uint64_t v, int width)
{
    char d[24];
    int  n = 0;

    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 || n < width);
    while (n > 0 && o->n < o->cap)
        o->b[o->n++] = d[--n];
}

/* Client bytes: at most `budget` output bytes, escapes never cut. */
static void
put_escaped(struct out *o, const char *s, size_t len, size_t budget)
{
    static const char hex[] = "0123456789abcdef";
    size_t end = o->n + budget < o->cap ? o->n + budget : o->cap;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            if (o->n + 1 > end)
                return;
            o->b[o->n++] = (char)ch;
            continue;
        }
        if (o->n + 4 > end)
            return;
        o->b[o->n++] = '\\';
        o->b[o->n++] = 'x';
        o->b[o->n++] = hex[ch >> 4];
        o->b[o->n++] = hex[ch & 15];
    }
}

static void
put_quoted(struct out *o, const char *s, size_t len, size_t budget)
{
    put(o, "\"", 1);
    if (s == NULL)
        put(o, "-", 1);
    else
        put_escaped(o, s, len, budget);
    put(o, "\"", 1);
}

/* "[v6]:port" / "v4:port" -> the address alone, as nginx logs it. */
static void
put_addr(struct out *o, const char *peer)
{
    const char *colon = strrchr(peer, ':');

    if (peer[0] == '[' && (colon = strchr(peer, ']')) != NULL)
        put(o, peer + 1, (size_t)(colon - peer - 1));
    else if (colon != NULL)
        put(o, peer, (size_t)(colon - peer));
    else
        puts_(o, peer);
}

/* The id of a tus or IETF-draft upload resource in target, or NULL. */
static const char *
tus_id_in(const struct conn *c, const char *target, size_t len)
{
    static const char *const resources[] = { TUS_RESOURCE, IETF_RESOURCE };
    const char *prefix = c->w->conf->url_prefix;
    size_t plen = strlen(prefix);

    if (strncmp(target, prefix, plen) != 0)
        return NULL;
    for (size_t i = 0; i < sizeof(resources) / sizeof(resources[0]); i++) {
        size_t rlen = strlen(resources[i]);
        if (len > plen + rlen
            && strncmp(target + plen, resources[i], rlen) == 0)
            return target + plen + rlen;
    }
    return NULL;
}

static void
put_request(struct out *o, const struct conn *c, const struct http_request *r,
            const char **tus_id)
{
    size_t len = strcspn(r->target, "?");        /* never the signature */
    const char *id = tus_id_in(c, r->target, len);

    put(o, "\"", 1);
    puts_(o, http_method_name(r->method));
    put(o, " ", 1);
    if (id != NULL && (size_t)(r->target + len - id) > ID_KEEP) {
        put_escaped(o, r->target, (size_t)(id - r->target) + ID_KEEP,
                    PATH_CAP);
        puts_(o, "...");
        *tus_id = id;
    } else {
        put_escaped(o, r->target, len, PATH_CAP);
    }
    puts_(o, r->http_minor == 0 ? " HTTP/1.0\"" : " HTTP/1.1\"");
}

static void
put_session(struct out *o, const struct conn *c, const struct http_request *r,
            const char *tus_id)
{
    const char *sid = r ? http_header_get(r, "X-Upload-Session-ID") : NULL;

    puts_(o, " sid=");
    if (sid != NULL)
        put_quoted(o, sid, strlen(sid), SID_CAP);
    else if (tus_id != NULL)
        put_quoted(o, tus_id, strnlen(tus_id, ID_KEEP), SID_CAP);
    else if (c->log_id[0] != '\0')
        put_quoted(o, c->log_id, strlen(c->log_id), SID_CAP);
    else
        put_quoted(o, NULL, 0, 0);
}

void
accesslog_note_id(struct conn *c, const char *id)
{
    snprintf(c->log_id, sizeof(c->log_id), "%.*s", ID_KEEP, id);
}

void
accesslog_request(struct conn *c)
{
    struct linesink *ls = c->w->alog;
    const struct http_request *r = NULL;
    const char *tus_id = NULL, *h;

    if (!c->req_live)
        return;
    c->req_live = false;
    if (ls == NULL) {
        c->log_id[0] = '\0';
        return;
    }
    if (c->in != NULL && c->method >= 0 && c->in->req.target != NULL)
        r = &c->in->req;
    struct out o = { linesink_begin(ls), 0, LINESINK_LINE_MAX - 1 };
    put_addr(&o, c->peer);
    puts_(&o, " - - [");
    puts_(&o, linesink_clf_time(ls));
    puts_(&o, "] ");
    if (r != NULL)
        put_request(&o, c, r, &tus_id);
    else
        puts_(&o, "\"-\"");
    /* No answer started: the connection ended first (nginx's 499). */
    uint64_t body = c->sent > c->head_len ? c->sent - c->head_len : 0;
    int64_t ms = loop_now_ms(c->w->loop) - c->req_start_ms;
    put(&o, " ", 1);
    put_u64(&o, (uint64_t)(c->status ? c->status : 499), 0);
    put(&o, " ", 1);
    put_u64(&o, body, 0);
    put(&o, " ", 1);
    h = r ? http_header_get(r, "Referer") : NULL;
    put_quoted(&o, h, h ? strcspn(h, "?#") : 0, AGENT_CAP);
    put(&o, " ", 1);
    h = r ? http_header_get(r, "User-Agent") : NULL;
    put_quoted(&o, h, h ? strlen(h) : 0, AGENT_CAP);
    if (ms < 0)
        ms = 0;
    puts_(&o, " in=");
    put_u64(&o, c->body_bytes, 0);
    puts_(&o, " t=");
    put_u64(&o, (uint64_t)ms / 1000, 0);
    put(&o, ".", 1);
    put_u64(&o, (uint64_t)ms % 1000, 3);
    put_session(&o, c, r, tus_id);
    c->log_id[0] = '\0';
    linesink_commit(ls, o.n);
}
