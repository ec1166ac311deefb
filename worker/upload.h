/* upload: PUT of a signed URL, streamed to a staging file, published
 * atomically once complete and durable; and the HEAD that reports a
 * resumable upload's durable state. */
#ifndef WORKER_UPLOAD_H
#define WORKER_UPLOAD_H

#include <stdbool.h>

struct conn;
struct handler;
struct http_request;

/* Body, completion, abort and checkpoint of an upload (handler.h); set on
 * the connection by upload_begin. */
extern const struct handler upload_handler;

/* From the parser's head callback: checks path, size, signature and space
 * before any body byte is read. 0 = read the body, -1 = answered. */
int  upload_begin(struct conn *c, struct http_request *req);
/* HEAD of a signed upload URL: the session's durable state, or false. */
bool upload_status(struct conn *c, struct http_request *req);

#endif
