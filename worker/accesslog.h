/* accesslog: one line per request, nginx "combined" plus a few fields.
 *
 * conn calls accesslog_request (through w->log_request, which worker.c
 * sets) once per request, when its answer is sent or its connection ends
 * first; the line goes to the worker's linesink
 * (lib/util/linesink.h: opened by the master, flushed by worker.c at the
 * end of each loop turn). Format and field meanings: docs/operations.md,
 * "Access log". */
#ifndef WORKER_ACCESSLOG_H
#define WORKER_ACCESSLOG_H

struct conn;

/* The line for c's request, if one is open and not yet logged. */
void accesslog_request(struct conn *c);
/* A tus upload this request created: its id, logged shortened. */
void accesslog_note_id(struct conn *c, const char *id);

#endif
