/* tus_finish.c: answers once a body is in (publish when every byte is
 * held), HEAD of an upload resource, and DELETE (termination). */
#define _GNU_SOURCE
#include "worker/tus.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/auth/auth.h"
#include "lib/conf/conf.h"
#include "lib/http/response.h"
#include "lib/http/tusmeta.h"
#include "lib/store/manifest.h"
#include "lib/store/path.h"
#include "lib/store/retry.h"
#include "lib/util/decimal.h"
#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/accesslog.h"
#include "worker/conn.h"
#include "worker/handler.h"
#include "worker/session.h"
#include "worker/syncpool.h"
#include "worker/tus_part.h"

static void
tus_respond_done(struct tus *t, struct conn *c)
{
    struct http_head h;
    struct shm_view v;
    char location[sizeof(c->w->conf->url_prefix) + sizeof(TUS_RESOURCE)
                  + TUS_ID_LEN];
    int64_t active = time(NULL);
    uint64_t offset = 0;

    if (sess_view(t->sess, &v) == 0) {
        offset = v.state == SHM_DONE ? v.size : v.prefix;
        active = v.last_active;
    }
    tus_head_begin(c, &h, t->op == OP_CREATE ? 201 : 204);
    if (t->op == OP_CREATE) {
        snprintf(location, sizeof(location), "%s" TUS_RESOURCE "%s",
                 c->w->conf->url_prefix, t->id);
        http_head_add(&h, "Location", "%s", location);
        accesslog_note_id(c, t->id);
    }
    http_head_add(&h, "Upload-Offset", "%llu", (unsigned long long)offset);
    tus_add_expires(c, &h, active);
    if (t->op == OP_CREATE)
        http_head_add(&h, "Content-Length", "0");
    conn_respond_head(c, &h, NULL, 0);
}

/* tus concatenation: what HEAD says of a partial or final upload. */
static void
add_concat(struct conn *c, struct http_head *h,
           const struct manifest_header *hd)
{
    char list[TUS_CONCAT_MAX + 1] = "final;";
    const char *p = hd->parts;
    size_t n = strlen(list);

    if (hd->concat == MANIFEST_CONCAT_PARTIAL)
        http_head_add(h, "Upload-Concat", "partial");
    if (hd->concat != MANIFEST_CONCAT_FINAL)
        return;
    while (*(p += strspn(p, " ")) != '\0' && n < sizeof(list)) {
        int len = (int)strcspn(p, " ");
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s" TUS_RESOURCE
                              "%.*s", n > 6 ? " " : "",
                              c->w->conf->url_prefix, len, p);
        p += len;
    }
    http_head_add(h, "Upload-Concat", "%s", list);
}

static void
tus_respond_status(struct tus *t, struct conn *c)
{
    struct http_head h;
    struct shm_view v;
    const struct manifest_header *hd = sess_header(t->sess);

    if (sess_view(t->sess, &v) < 0) {
        tus_reply_error(c, 500, false, "cannot read the upload");
        return;
    }
    tus_head_begin(c, &h, 200);
    /* A final upload has an offset only once it is assembled (tus 1.0.0,
     * concatenation): before that it would mean nothing to resume from. */
    if (hd->concat != MANIFEST_CONCAT_FINAL || v.state == SHM_DONE
        || v.prefix == v.size)
        http_head_add(&h, "Upload-Offset", "%llu", (unsigned long long)
                      (v.state == SHM_DONE ? v.size : v.prefix));
    add_concat(c, &h, hd);
    if (v.size == SHM_SIZE_UNKNOWN)
        http_head_add(&h, "Upload-Defer-Length", "1");
    else
        http_head_add(&h, "Upload-Length", "%llu",
                      (unsigned long long)v.size);
    if (v.state != SHM_DONE && hd->meta[0])
        http_head_add(&h, "Upload-Metadata", "%s", hd->meta);
    tus_add_expires(c, &h, v.last_active);
    http_head_add(&h, "Cache-Control", "no-store");
    conn_respond_head(c, &h, NULL, 0);
}

void
tus_finished(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    if (!tus_still_wanted(t))
        return;
    struct conn *c = t->c;
    if (rc != 0 && rc != 200 && rc != 201) {
        tus_fail(t, rc, false, "%s", rc == 409
             ? "a different file exists at this path"
             : rc == 460 ? "the file's SHA-256 is not the one announced "
                           "(X-Content-SHA256, Digest or Repr-Digest)"
             : rc == 507 ? "not enough free space"
             : rc == 503 && sess_elsewhere(s) ? sess_error(s)
             : "cannot store the upload");
        return;
    }
    conn_clear_handler(c, t);
    tus_leave_gauge(t);
    if (t->op == OP_HEAD)
        tus_respond_status(t, c);
    else
        tus_respond_done(t, c);
    tus_free(t);
}

void
tus_status_opened(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    struct shm_view v;
    (void)s;
    if (!tus_still_wanted(t) || !tus_usable(t, rc, false, &v))
        return;
    /* All bytes held but not published (a publication that failed, or a
     * client that stopped before its last answer): finish now, or the
     * client would see offset == length and never come back. */
    if (v.state == SHM_ACTIVE && v.size != SHM_SIZE_UNKNOWN
        && v.prefix == v.size) {
        t->pending = true;
        sess_finish(t->sess, tus_finished, t);
        return;
    }
    struct conn *c = t->c;
    conn_clear_handler(c, t);
    tus_respond_status(t, c);
    tus_free(t);
}

static void
tus_terminated(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    (void)s;
    sess_free(t->sess);       /* tus_terminate ends the session; nothing kept */
    t->sess = NULL;
    if (!tus_still_wanted(t))
        return;
    if (rc != 204) {
        tus_fail(t, rc == 503 ? 503 : 500, false, "%s", rc == 503
                 ? "the upload moved to another cluster node; retry"
                 : "cannot remove the upload");
        return;
    }
    struct conn *c = t->c;
    struct http_head h;
    conn_clear_handler(c, t);
    tus_free(t);
    tus_head_begin(c, &h, 204);
    conn_respond_head(c, &h, NULL, 0);
}

/* In a cluster the upload may be in no table of this node: it is opened
 * (taken over if its owner is gone) before it is removed. */
static void
terminate_opened(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    struct shm_view v;
    if (!tus_still_wanted(t) || !tus_usable(t, rc, false, &v))
        return;
    if (v.state != SHM_ACTIVE) {
        tus_fail(t, 409, false, "upload is complete (or being completed); "
                 "a published file is not removed");
        return;
    }
    t->pending = true;
    sess_terminate(s, tus_terminated, t);
}

int
tus_terminate(struct tus *t)
{
    struct shm_view v;
    uint8_t key[MANIFEST_KEY_LEN];
    struct manifest_header h;

    memset(&h, 0, sizeof(h));
    tus_session_key(t->id, key);
    if ((t->sess = sess_new(t->w, key, &h)) == NULL)
        return tus_fail(t, 503, false, "out of memory");
    if (sess_open_needed(t->sess)) {
        t->pending = true;
        sess_open(t->sess, false, terminate_opened, t);
        return 0;
    }
    int rc = sess_find(t->sess, &v);
    if (rc != 0 || v.proto != MANIFEST_PROTO_TUS)
        return tus_fail(t, rc == 0 ? 404 : rc, false, "no such upload");
    if (v.state == SHM_DOOMED)
        return tus_fail(t, 410, false, "upload expired or terminated");
    if (tus_expired(t, &v))
        return tus_fail(t, 410, false, "upload expired (Upload-Expires has "
                    "passed)");
    if (v.state != SHM_ACTIVE)
        return tus_fail(t, 409, false, "upload is complete (or being "
                    "completed); a published file is not removed");
    t->pending = true;
    sess_terminate(t->sess, tus_terminated, t);
    return 0;
}

