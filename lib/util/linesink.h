/* linesink: where whole log lines go — a file, or a syslog datagram socket.
 *
 * Opened by the master before it forks (so a bad path fails the start);
 * every worker inherits its own copy of the struct and reopens the sink on
 * SIGUSR1. A file gets the lines of one event-loop turn with one write(2)
 * (linesink_flush): a write costs more than formatting a line, and O_APPEND
 * places each write whole, so lines of several workers never interleave.
 * Syslog gets one RFC 3164 datagram per line, sent MSG_DONTWAIT and dropped
 * when the socket is full: nothing here waits for a slow syslog daemon. */
#ifndef LIB_UTIL_LINESINK_H
#define LIB_UTIL_LINESINK_H

#include <stddef.h>

#define LINESINK_LINE_MAX 4096          /* one line, newline included */

struct linesink;

/* target: "off" (*out = NULL), "syslog" (/dev/log), "syslog:/SOCKET" or a
 * file path. -1 with err naming the target and the failure. */
int  linesink_open(const char *target, struct linesink **out, char *err,
                   size_t errlen);
/* Room for one line of at most LINESINK_LINE_MAX - 1 bytes; write it there,
 * then linesink_commit its length. */
char *linesink_begin(struct linesink *s);
void linesink_commit(struct linesink *s, size_t n);
/* "05/Dec/2026:07:54:22 +0000", made once a second. */
const char *linesink_clf_time(struct linesink *s);
/* Write the lines buffered for a file: at the end of every loop turn. */
void linesink_flush(struct linesink *s);
/* After logrotate: reopen the path (or reconnect). On failure -1 with
 * errno, and the old file stays in use. NULL: nothing to do. */
int  linesink_reopen(struct linesink *s);
void linesink_close(struct linesink *s);

#endif
