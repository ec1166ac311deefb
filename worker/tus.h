/* tus: the tus 1.0.0 resumable upload protocol (core, creation,
 * creation-with-upload, creation-defer-length, expiration, checksum,
 * termination) on the same session table and manifests as the
 * chunked-header protocol. See docs/protocol.md, "tus 1.0". */
#ifndef WORKER_TUS_H
#define WORKER_TUS_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct http_head;
struct http_request;

/* Is this request tus's (a POST creation, or any method but OPTIONS on an
 * upload resource under <url_prefix>.tus/)? Decided from the head alone. */
bool tus_wants(struct conn *c, struct http_request *req);
/* Same contract as upload_begin/_body/_complete/_abort (upload.h). */
int  tus_begin(struct conn *c, struct http_request *req);
int  tus_body(struct conn *c, const char *at, size_t len);
int  tus_complete(struct conn *c);
void tus_abort(struct conn *c);
/* Make what a PATCH body brought so far durable (a network change is under
 * way); -1 if there is nothing to checkpoint (or a checksum must decide). */
int  tus_checkpoint(struct conn *c);
/* Discovery headers for OPTIONS (Tus-Version, Tus-Extension, ...). */
void tus_options_headers(struct conn *c, struct http_head *h);

#endif
