/* ietf_append.c: upload append (PATCH of an upload resource with
 * Upload-Offset and Upload-Complete): the offset and length checks against
 * the session, the length fixed by a complete request, then the body goes
 * to the session's lease. */
#define _GNU_SOURCE
#include "worker/ietf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/conf/conf.h"
#include "lib/store/manifest.h"
#include "worker/conn.h"
#include "worker/handler.h"
#include "worker/ietf_part.h"
#include "worker/session.h"

static void size_declared(struct sess *s, int rc, void *arg);

int
ietf_append_parse(struct ietf *t, struct http_request *req, const char **why)
{
    const char *ul = http_header_get(req, "Upload-Length");

    if (ietf_sf_uint(http_header_get(req, "Upload-Offset"), &t->offset) < 0) {
        *why = "Upload-Offset (a non-negative integer) is required";
        return 400;
    }
    if (ietf_complete_parse(t->version,
                            http_header_get(req, "Upload-Complete"),
                            http_header_get(req, "Upload-Incomplete"),
                            &t->complete, why) < 0)
        return 400;
    if (ul && ietf_sf_uint(ul, &t->length) < 0) {
        *why = "Upload-Length must be a non-negative integer";
        return 400;
    }
    if (t->length != MANIFEST_SIZE_UNKNOWN
        && t->length > t->w->conf->max_upload_size) {
        *why = "Upload-Length over the server's maximum upload size";
        return 413;
    }
    return ietf_parse_body(t, req, why);
}

/* The session is open, offset and length checked: take the body. */
static void
append_ready(struct ietf *t)
{
    const char *why = NULL;
    struct shm_view v;
    if (sess_view(t->sess, &v) < 0) {
        ietf_fail(t, 500, true, "cannot read the upload");
        return;
    }
    t->length = v.size;
    int status = ietf_lease_body(t, v.size, &why);
    if (status != 0) {
        ietf_fail_problem(t, status, true, status == 400
                          ? IETF_INCONSISTENT_LENGTH : IETF_PROBLEM_NONE, 0,
                          why);
        return;
    }
    ietf_resume(t, NULL);
}

static int
inconsistent(struct ietf *t, const char *why)
{
    return ietf_fail_problem(t, 400, true, IETF_INCONSISTENT_LENGTH, 0, why);
}

/* The length this request implies: a complete request ends the upload at
 * offset + body; Upload-Length may say so too. UNKNOWN if neither. */
static int
implied_length(struct ietf *t, uint64_t *out)
{
    uint64_t want = t->length;              /* Upload-Length, or UNKNOWN */
    if (t->complete && t->body_len >= 0) {
        uint64_t end = t->offset + (uint64_t)t->body_len;
        if (want != MANIFEST_SIZE_UNKNOWN && want != end)
            return inconsistent(t, "Upload-Length differs from where a "
                                "complete request's body ends");
        want = end;
    }
    *out = want;
    return 0;
}

static void
opened(struct sess *s, int rc, void *arg)
{
    struct ietf *t = arg;
    struct shm_view v;
    uint64_t want = MANIFEST_SIZE_UNKNOWN;
    (void)s;
    if (!ietf_still_wanted(t) || !ietf_usable(t, rc, true, &v))
        return;
    if (v.state == SHM_DONE) {
        ietf_fail_problem(t, 400, true, IETF_COMPLETED_UPLOAD, 0,
                          "upload is already complete");
        return;
    }
    if (v.state != SHM_ACTIVE) {
        ietf_fail(t, 503, true, "upload is busy (being created or "
                  "completed); retry");
        return;
    }
    if (t->offset != v.prefix) {
        ietf_fail_problem(t, 409, true, IETF_MISMATCHING_OFFSET, v.prefix,
                          "Upload-Offset is not the upload's offset");
        return;
    }
    if (implied_length(t, &want) < 0)
        return;
    if (want != MANIFEST_SIZE_UNKNOWN && v.size != SHM_SIZE_UNKNOWN
        && want != v.size) {
        inconsistent(t, "the request's length differs from the upload's");
        return;
    }
    if (t->complete && want == MANIFEST_SIZE_UNKNOWN
        && v.size == SHM_SIZE_UNKNOWN) {
        ietf_fail(t, 411, true, "a complete append without Content-Length "
                  "needs Upload-Length");
        return;
    }
    if (want != MANIFEST_SIZE_UNKNOWN && v.size == SHM_SIZE_UNKNOWN) {
        if (want > t->w->conf->max_upload_size) {
            ietf_fail(t, 413, true, "upload over the server's maximum "
                      "upload size");
            return;
        }
        if (t->body_len > 0 && t->offset + (uint64_t)t->body_len > want) {
            inconsistent(t, "body goes past Upload-Length");
            return;
        }
        t->pending = true;
        sess_set_size(t->sess, want, size_declared, t);
        return;
    }
    append_ready(t);
}

static void
size_declared(struct sess *s, int rc, void *arg)
{
    struct ietf *t = arg;
    (void)s;
    if (!ietf_still_wanted(t))
        return;
    if (rc == 409) {
        inconsistent(t, "the length is less than the bytes already received");
        return;
    }
    if (rc != 0) {
        ietf_fail(t, rc, true, "cannot record the upload's length");
        return;
    }
    append_ready(t);
}

int
ietf_append_begin(struct ietf *t, struct conn *c)
{
    uint8_t key[MANIFEST_KEY_LEN];
    struct manifest_header h;

    memset(&h, 0, sizeof(h));
    ietf_session_key(t->id, key);
    if ((t->sess = sess_new(c->w, key, &h)) == NULL)
        return ietf_fail(t, 503, true, "out of memory");
    conn_set_handler(c, &ietf_handler, t);
    t->in_head = true;
    t->pending = true;
    sess_open(t->sess, false, opened, t);
    return ietf_after_head_call(t, c);
}
