/* admin: /health, /metrics and CORS preflight (OPTIONS). */
#ifndef WORKER_ADMIN_H
#define WORKER_ADMIN_H

struct conn;
struct http_head;

void admin_health(struct conn *c);
void admin_metrics(struct conn *c);
/* The preflight and generic OPTIONS answer; `extra` (may be NULL) adds a
 * protocol's discovery headers (the router passes tus's). */
void admin_options(struct conn *c,
                   void (*extra)(struct conn *c, struct http_head *h));

#endif
