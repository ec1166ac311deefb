/* upload_parse: the pure parts of reading an upload's head (no I/O, no
 * state): unit-tested in tests/unit/test_upload_parse.c. */
#ifndef WORKER_UPLOAD_PARSE_H
#define WORKER_UPLOAD_PARSE_H

#include <stdbool.h>
#include <stdint.h>

struct conf;
struct http_request;

#define UPLOAD_SESSION_ID_MAX 128

/* X-Upload-Session-ID: 1-128 of A-Z a-z 0-9 - _ . */
bool upload_session_id_valid(const char *id);
/* A decimal header: 0 absent (*v_r = -1), 1 read, -1 malformed. */
int  upload_header_number(struct http_request *req, const char *name,
                          int64_t *v_r);
/* A request for a protocol switched off in cf: 501 with *why, else 0. */
int  upload_check_enabled(const struct conf *cf, struct http_request *req,
                          const char **why);

#endif
