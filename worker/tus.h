/* tus: the tus 1.0.0 resumable upload protocol (core, creation,
 * creation-with-upload, creation-defer-length, expiration, checksum,
 * termination, concatenation) on the same session table and manifests as the
 * chunked-header protocol. See docs/protocol.md, "tus 1.0". */
#ifndef WORKER_TUS_H
#define WORKER_TUS_H

#include <stdbool.h>

struct conn;
struct handler;
struct http_head;
struct http_request;

/* Is this request tus's (a POST creation, or any method but OPTIONS on an
 * upload resource under <url_prefix>.tus/)? Decided from the head alone. */
bool tus_wants(struct conn *c, struct http_request *req);
/* The head of a request tus_wants: 0 = read the body, -1 = answered.
 * Sets tus_handler (handler.h: body, completion, abort, checkpoint of a
 * PATCH body; -1 from checkpoint if a checksum must decide). */
int  tus_begin(struct conn *c, struct http_request *req);
extern const struct handler tus_handler;
/* Discovery headers for OPTIONS (Tus-Version, Tus-Extension, ...). */
void tus_options_headers(struct conn *c, struct http_head *h);

#endif
