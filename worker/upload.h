/* upload: PUT of a signed URL, streamed to a staging file, published
 * atomically once complete and durable. */
#ifndef WORKER_UPLOAD_H
#define WORKER_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct http_request;

/* From the parser's head callback: checks path, size, signature and space
 * before any body byte is read. 0 = read the body, -1 = answered. */
int  upload_begin(struct conn *c, struct http_request *req);
int  upload_body(struct conn *c, const char *at, size_t len);
/* The body is complete: make it durable and publish (off the loop). */
int  upload_complete(struct conn *c);
/* HEAD of a signed upload URL: the session's durable state, or false. */
bool upload_status(struct conn *c, struct http_request *req);
/* Make what arrived so far durable (a network change is under way). */
int  upload_checkpoint(struct conn *c);
/* The connection is going away (or the request failed). A publish job in
 * flight finishes on its own and no longer refers to c. */
void upload_abort(struct conn *c);

#endif
