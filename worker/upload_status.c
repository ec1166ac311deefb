/* upload_status.c: HEAD of a signed upload URL (with X-Upload-Session-ID
 * for the chunked protocol): what the server holds durably, so a client
 * resumes without re-sending; finishes an upload whose bytes are all held
 * but were never published. */
#define _GNU_SOURCE
#include "worker/upload.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "lib/auth/auth.h"
#include "lib/conf/conf.h"
#include "lib/http/chunk.h"
#include "lib/http/response.h"
#include "lib/store/manifest.h"
#include "lib/store/path.h"
#include "lib/store/publish.h"
#include "lib/store/retry.h"
#include "lib/util/crc32c.h"
#include "lib/util/decimal.h"
#include "lib/util/digest.h"
#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/conn.h"
#include "worker/handler.h"
#include "worker/session.h"
#include "worker/syncpool.h"
#include "worker/upload_part.h"
#include "worker/upload_parse.h"

/* Every byte is held but nothing published it: the request that would
 * have was cut, or its worker died publishing, or the master restarted in
 * between. The client asking for status is the natural moment to finish
 * (tus does the same on HEAD): publish, then answer. */
static void
held_finished(struct sess *s, int rc, void *arg)
{
    struct upload *up = arg;
    (void)s;
    up->job_pending = false;
    if (rc == 200 || rc == 201)
        up->complete_already = true;      /* published: offset = size */
    /* A status answer: 200 with the offsets whatever finishing said,
     * unless it failed in a way the client must hear about. */
    upload_finish(up, rc == 0 || rc == 200 || rc == 201 ? 200 : rc);
}

static void
held_opened(struct sess *s, int rc, void *arg)
{
    struct upload *up = arg;
    up->opening = false;
    if (up->c == NULL || !conn_alive(up->c) || rc != 0) {
        up->job_pending = false;
        if (rc == 404 && upload_published_meanwhile(up))
            rc = 0;
        upload_finish(up, rc != 0 ? rc : 200);
        return;
    }
    sess_finish(s, held_finished, up);
}

/* A cluster node's status request (docs/cluster.md): the session may be
 * in no table of this node yet, or be another node's. Opening it takes it
 * over when its owner is gone (rebuilt from its manifest); the answer is
 * then what upload_status would have said. */
static void
status_opened(struct sess *s, int rc, void *arg)
{
    struct upload *up = arg;
    struct shm_view v;
    struct auth_result res;
    int64_t have;

    up->opening = false;
    up->job_pending = false;
    if (up->c == NULL || !conn_alive(up->c)) {
        upload_free(up, true);
        return;
    }
    if (rc == 0 && sess_view(s, &v) == 0 && v.state != SHM_DOOMED) {
        if (upload_check_auth(up, (int64_t)v.size, &res) < 0) {
            upload_finish(up, upload_auth_status(res.status));
            return;
        }
        up->chunked_proto = true;
        up->total = (int64_t)v.size;
        if (v.state == SHM_ACTIVE && v.size != SHM_SIZE_UNKNOWN
            && v.prefix == v.size) {
            up->job_pending = true;
            sess_finish(s, held_finished, up);
            return;
        }
        upload_finish(up, 200);
        return;
    }
    if (rc != 0 && rc != 404) {
        upload_finish(up, rc);       /* 503 another node's: Retry-After */
        return;
    }
    sess_detach(up->sess);
    up->sess = NULL;
    if (upload_final_exists(up, &have) && have > 0
        && upload_check_auth(up, have, &res) == 0) {
        up->total = have;
        up->complete_already = true;
        up->chunked_proto = true;
        upload_finish(up, 200);
        return;
    }
    upload_finish(up, 404);
}

/* Moves the status request off the stack into the connection and opens
 * its session; `opened` answers once the open is done. False only when
 * out of memory (nothing has changed then). */
static bool
status_open(struct conn *c, const struct upload *stack, sess_cb *opened)
{
    struct upload *up = malloc(sizeof(*up));
    if (up == NULL)
        return false;
    *up = *stack;
    up->c = c;
    up->mode = MODE_SESSION;
    up->opening = true;
    up->job_pending = true;
    conn_set_handler(c, &upload_handler, up);
    sess_open(up->sess, false, opened, up);
    return true;
}

/* HEAD on a signed upload URL (with X-Upload-Session-ID for the chunked
 * protocol): what the server holds durably, so a client resumes without
 * re-sending. Returns false when there is no session (the caller then
 * answers HEAD for the published file, or 404). */
bool
upload_status(struct conn *c, struct http_request *req)
{
    struct upload up;
    struct shm_view v;
    uint8_t key[MANIFEST_KEY_LEN];
    const char *why = NULL;
    int status;

    if (c->w->table == NULL || c->rel == NULL)
        return false;
    memset(&up, 0, sizeof(up));
    up.w = c->w;
    up.fd = -1;
    up.started = time(NULL);
    const char *sid = http_header_get(req, "X-Upload-Session-ID");
    if (sid == NULL && (c->query == NULL || c->query[0] == '\0'))
        return false;
    /* Switched off: HEAD answers for the published file only. */
    if (sid ? !c->w->conf->chunked_uploads : !c->w->conf->resumable_uploads)
        return false;
    if ((status = upload_parse_common(c, req, &up, &why)) != 0) {
        conn_respond_text(c, status, "%d %s: %s", status,
                          http_status_text(status), why);
        return true;
    }
    if (sid && !upload_session_id_valid(sid)) {
        conn_respond_text(c, 400, "400 Bad Request: invalid "
                          "X-Upload-Session-ID");
        return true;
    }
    snprintf(up.session_id, sizeof(up.session_id), "%s", sid ? sid : "");
    manifest_key(up.session_id, strlen(up.session_id), up.rel, up.rel_len,
                 key);
    struct manifest_header h;
    memset(&h, 0, sizeof(h));
    up.sess = sess_new(c->w, key, &h);
    if (up.sess != NULL && sess_open_needed(up.sess)) {
        if (status_open(c, &up, status_opened))
            return true;
        sess_free(up.sess);
        conn_respond_text(c, 503, "503 Service Unavailable: out of memory");
        return true;
    }
    if (up.sess == NULL || sess_find(up.sess, &v) != 0) {
        sess_free(up.sess);
        up.sess = NULL;
        /* No session, but the file is there: finished (a published
         * session is dropped at once). Answer as complete if the URL is
         * signed for the file's size. */
        int64_t have;
        struct auth_result res;
        if (!upload_final_exists(&up, &have) || have <= 0
            || upload_check_auth(&up, have, &res) < 0)
            return false;
        up.total = have;
        up.complete_already = true;
        up.chunked_proto = true;
        upload_respond_status(c, &up, 200);
        return true;
    }
    /* The session's size is what the URL must have signed. */
    struct auth_result res;
    if (upload_check_auth(&up, (int64_t)v.size, &res) < 0) {
        sess_free(up.sess);
        conn_respond_text(c, upload_auth_status(res.status), "%d %s: %s",
                          upload_auth_status(res.status),
                          http_status_text(upload_auth_status(res.status)),
                          res.reason);
        return true;
    }
    up.chunked_proto = true;
    up.total = (int64_t)v.size;
    if (v.state == SHM_ACTIVE && v.size != SHM_SIZE_UNKNOWN
        && v.prefix == v.size && status_open(c, &up, held_opened))
        return true;
    upload_respond_status(c, &up, 200);
    sess_free(up.sess);
    return true;
}
