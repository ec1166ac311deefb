/* log: leveled log lines to stderr, a file or syslog.
 *
 * One sink per process. Lines carry a role prefix ("master", "worker 2") so an
 * operator reading a shared file can tell the processes apart. Never pass a
 * secret or a MAC to these functions. */
#ifndef LIB_UTIL_LOG_H
#define LIB_UTIL_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* target: "stderr", "syslog", or a file path (opened O_APPEND). */
int  log_open(const char *target, enum log_level level, char *err, size_t errlen);
/* Re-open a file target (after logrotate moved it); no-op for others. */
int  log_reopen(void);
void log_set_role(const char *role);
void log_set_level(enum log_level level);
int  log_level_parse(const char *name, enum log_level *out);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
