/* accesslog: one line per request, nginx "combined" plus a few fields.
 *
 * The master opens the sink (logging.access_log) before it forks, so a bad
 * path fails the start; every worker inherits its own copy and reopens it on
 * SIGUSR1. conn.c calls accesslog_request once per request, when its answer
 * is sent or its connection ends first; worker.c flushes the lines of a loop
 * turn at its end. Format and field meanings: docs/operations.md, "Access
 * log". */
#ifndef WORKER_ACCESSLOG_H
#define WORKER_ACCESSLOG_H

#include <stddef.h>

struct accesslog;
struct conn;

/* target: "off" (*out = NULL), "syslog", "syslog:/SOCKET" or a file path. */
int  accesslog_open(const char *target, struct accesslog **out, char *err,
                    size_t errlen);
/* Write the lines buffered for a file: at the end of every loop turn. */
void accesslog_flush(struct accesslog *al);
/* After logrotate: reopen the path (or reconnect). On failure -1 with errno,
 * and the old file stays in use. NULL: nothing to do. */
int  accesslog_reopen(struct accesslog *al);
void accesslog_close(struct accesslog *al);

/* The line for c's request, if one is open and not yet logged. */
void accesslog_request(struct conn *c);
/* A tus upload this request created: its id, logged shortened. */
void accesslog_note_id(struct conn *c, const char *id);

#endif
