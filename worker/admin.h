/* admin: /health, /metrics and CORS preflight (OPTIONS). */
#ifndef WORKER_ADMIN_H
#define WORKER_ADMIN_H

struct conn;

void admin_health(struct conn *c);
void admin_metrics(struct conn *c);
void admin_options(struct conn *c);

#endif
