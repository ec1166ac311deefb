/* ietf_finish.c: answers once a body is in (publish when every byte is
 * held), offset retrieval (HEAD of an upload resource) and cancellation
 * (DELETE). */
#define _GNU_SOURCE
#include "worker/ietf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/conf/conf.h"
#include "lib/http/response.h"
#include "lib/store/manifest.h"
#include "worker/accesslog.h"
#include "worker/conn.h"
#include "worker/handler.h"
#include "worker/ietf_part.h"
#include "worker/session.h"

/* rc: sess_finish's (0 not complete yet, 201 published, 200 identical). */
static void
respond_done(struct ietf *t, struct conn *c, int rc)
{
    struct http_head h;
    struct shm_view v;
    char location[sizeof(c->w->conf->url_prefix) + sizeof(IETF_RESOURCE)
                  + IETF_ID_LEN];
    int status = rc == 201 || rc == 200 ? rc
                 : t->op == IETF_CREATE ? 201 : 204;

    if (sess_view(t->sess, &v) < 0) {
        memset(&v, 0, sizeof(v));
        v.size = SHM_SIZE_UNKNOWN;
        v.state = rc ? SHM_DONE : SHM_ACTIVE;
    }
    ietf_head_begin(t, c, &h, status);
    if (t->op == IETF_CREATE) {
        /* The same Location as the 104's, also once complete: clients
         * that did not see the 104 (browsers) need it. */
        ietf_location(t, location, sizeof(location));
        http_head_add(&h, "Location", "%s", location);
        accesslog_note_id(c, t->id);
    }
    ietf_add_state(t, &h, &v);
    if (v.state != SHM_DONE)
        ietf_add_limit(t, &h, v.last_active);
    if (status != 204)
        http_head_add(&h, "Content-Length", "0");
    conn_respond_head(c, &h, NULL, 0);
}

static void
respond_status(struct ietf *t, struct conn *c)
{
    struct http_head h;
    struct shm_view v;

    if (sess_view(t->sess, &v) < 0) {
        ietf_fail(t, 500, false, "cannot read the upload");
        return;
    }
    conn_clear_handler(c, t);
    ietf_head_begin(t, c, &h, 204);
    ietf_add_state(t, &h, &v);
    if (v.state != SHM_DONE)
        ietf_add_limit(t, &h, v.last_active);
    http_head_add(&h, "Cache-Control", "no-store");
    conn_respond_head(c, &h, NULL, 0);
    ietf_free(t);
}

void
ietf_finished(struct sess *s, int rc, void *arg)
{
    struct ietf *t = arg;
    if (!ietf_still_wanted(t))
        return;
    struct conn *c = t->c;
    if (rc != 0 && rc != 200 && rc != 201) {
        ietf_fail(t, rc, false, "%s", rc == 409
                  ? "a different file exists at this path"
                  : rc == 507 ? "not enough free space"
                  : rc == 503 && sess_elsewhere(s) ? sess_error(s)
                  : "cannot store the upload");
        return;
    }
    if (t->op == IETF_HEAD) {
        respond_status(t, c);
        return;
    }
    conn_clear_handler(c, t);
    ietf_leave_gauge(t);
    respond_done(t, c, rc);
    ietf_free(t);
}

void
ietf_status_opened(struct sess *s, int rc, void *arg)
{
    struct ietf *t = arg;
    struct shm_view v;
    (void)s;
    if (!ietf_still_wanted(t) || !ietf_usable(t, rc, false, &v))
        return;
    /* All bytes held but not published (a publication that failed, or a
     * worker killed before it): finish now, or the client would see
     * offset == length, not complete, and have nothing left to send. */
    if (v.state == SHM_ACTIVE && v.size != SHM_SIZE_UNKNOWN
        && v.prefix == v.size) {
        t->pending = true;
        sess_finish(t->sess, ietf_finished, t);
        return;
    }
    respond_status(t, t->c);
}

static void
cancelled(struct sess *s, int rc, void *arg)
{
    struct ietf *t = arg;
    (void)s;
    sess_free(t->sess);        /* ietf_cancel ends the session */
    t->sess = NULL;
    if (!ietf_still_wanted(t))
        return;
    if (rc != 204) {
        ietf_fail(t, rc == 503 ? 503 : 500, false, "%s", rc == 503
                  ? "the upload moved to another cluster node; retry"
                  : "cannot remove the upload");
        return;
    }
    struct conn *c = t->c;
    struct http_head h;
    conn_clear_handler(c, t);
    ietf_head_begin(t, c, &h, 204);
    conn_respond_head(c, &h, NULL, 0);
    ietf_free(t);
}

/* In a cluster the upload may be in no table of this node: it is opened
 * (taken over if its owner is gone) before it is removed. */
static void
cancel_opened(struct sess *s, int rc, void *arg)
{
    struct ietf *t = arg;
    struct shm_view v;
    if (!ietf_still_wanted(t) || !ietf_usable(t, rc, false, &v))
        return;
    if (v.state != SHM_ACTIVE) {
        ietf_fail(t, 409, false, "upload is complete (or being completed); "
                  "a published file is not removed");
        return;
    }
    t->pending = true;
    sess_terminate(s, cancelled, t);
}

int
ietf_cancel(struct ietf *t)
{
    struct shm_view v;
    uint8_t key[MANIFEST_KEY_LEN];
    struct manifest_header h;

    memset(&h, 0, sizeof(h));
    ietf_session_key(t->id, key);
    if ((t->sess = sess_new(t->w, key, &h)) == NULL)
        return ietf_fail(t, 503, false, "out of memory");
    if (sess_open_needed(t->sess)) {
        t->pending = true;
        sess_open(t->sess, false, cancel_opened, t);
        return 0;
    }
    int rc = sess_find(t->sess, &v);
    if (rc != 0 || v.proto != MANIFEST_PROTO_IETF)
        return ietf_fail(t, rc == 0 ? 404 : rc, false, "no such upload");
    if (v.state == SHM_DOOMED || ietf_expired(t, &v))
        return ietf_fail(t, 410, false, "upload expired or cancelled");
    if (v.state != SHM_ACTIVE)
        return ietf_fail(t, 409, false, "upload is complete (or being "
                         "completed); a published file is not removed");
    t->pending = true;
    sess_terminate(t->sess, cancelled, t);
    return 0;
}
