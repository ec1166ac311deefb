/* download: GET and HEAD of published files (sendfile, ranges, validators). */
#ifndef WORKER_DOWNLOAD_H
#define WORKER_DOWNLOAD_H

struct conn;
struct http_request;

void download_serve(struct conn *c, struct http_request *req);

#endif
