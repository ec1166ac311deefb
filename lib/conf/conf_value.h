/* conf_value: the setters of the key tables in conf.c. Each reads one
 * libconfig setting, checks it against its table row (type, range or
 * minimum length, unit suffixes, modes, listen addresses, secret files...)
 * and stores it in its field of ld->c, or returns -1 with a file:line:key
 * message in ld->err. Private to lib/conf/. */
#ifndef LIB_CONF_CONF_VALUE_H
#define LIB_CONF_CONF_VALUE_H

#include "lib/conf/conf_internal.h"

setter_fn conf_set_int, conf_set_bool, conf_set_size, conf_set_dur,
          conf_set_str, conf_set_prefix, conf_set_shm, conf_set_target,
          conf_set_level, conf_set_mode, conf_set_access_log,
          conf_set_sync, conf_set_node_id;
setter_fn conf_set_listen, conf_set_secrets, conf_set_secret_files,
          conf_set_origins;

#endif
