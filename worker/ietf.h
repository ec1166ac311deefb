/* ietf: the IETF resumable-upload draft (draft-ietf-httpbis-resumable-
 * upload, interop versions 3 to 8: Apple URLSession, tus-js-client's
 * 'ietf-draft-03' and 'ietf-draft-05') on the same session table and
 * manifests as tus and the chunked-header protocol. See docs/protocol.md,
 * "IETF resumable uploads". */
#ifndef WORKER_IETF_H
#define WORKER_IETF_H

#include <stdbool.h>

struct conn;
struct handler;
struct http_head;
struct http_request;

/* Is this request the draft's (a POST or PUT to a file URL carrying
 * Upload-Draft-Interop-Version, Upload-Complete or Upload-Incomplete, or
 * any method but OPTIONS on <url_prefix>.ietf/)? From the head alone. */
bool ietf_wants(struct conn *c, struct http_request *req);
/* The head of a request ietf_wants: 0 = read the body, -1 = answered.
 * Sets ietf_handler (handler.h). */
int  ietf_begin(struct conn *c, struct http_request *req);
extern const struct handler ietf_handler;
/* Discovery for OPTIONS: Upload-Limit. */
void ietf_options_headers(struct conn *c, struct http_head *h);

#endif
