/* policy: which rtnetlink events could disturb an upload, debounced.
 *
 * Pure and deterministic: the caller owns the state and passes the time. An
 * event matters when it touches an interesting interface (one holding a
 * listen address, every interface for a wildcard listen, or one carrying a
 * default route) and changes what a connection could notice: the link stops
 * or resumes being usable, an address comes or goes, the default route
 * comes or goes. Refreshes (IPv6 lifetime updates, repeated NEWLINKs with the
 * same state) and temporary IPv6 privacy addresses do not matter.
 *
 * Debouncing is per interface name and leading-edge: the first change opens
 * a window of debounce_ms and is reported at once (POLICY_CHANGE); changes
 * inside an open window push its end out and are reported as POLICY_EXTEND.
 * A flapping link thus yields one CHANGE however long it flaps. */
#ifndef NETMON_POLICY_H
#define NETMON_POLICY_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/conf/conf.h"
#include "netmon/rtnl.h"

#define POLICY_MAX_IFACES  512
#define POLICY_MAX_ADDRS   1024
#define POLICY_MAX_WINDOWS 64

enum policy_verdict {
    POLICY_IGNORE,      /* nothing an upload could notice */
    POLICY_CHANGE,      /* new change: bump the epoch, pause, log, wake */
    POLICY_EXTEND       /* inside an open window: extend the pause only */
};

struct policy_decision {
    enum policy_verdict verdict;
    char     ifname[IFNAMSIZ];  /* "if<index>" when the name is unknown */
    char     what[128];         /* "eth0: carrier lost"; may be set even for
                                 * POLICY_IGNORE, to explain at debug level */
    unsigned suppressed;        /* policy_poll: changes the window absorbed */
};

struct policy;

/* Listen addresses that do not parse, 0.0.0.0, :: or none at all make every
 * interface interesting. NULL on allocation failure. */
struct policy *policy_new(const struct conf_listen *listen, size_t nlisten,
                          uint64_t debounce_ms);
void policy_free(struct policy *p);

enum policy_verdict policy_feed(struct policy *p, const struct rtnl_event *ev,
                                uint64_t now_ms, struct policy_decision *out);

/* A full re-dump: begin, feed every dumped event, end. End forgets what the
 * dump no longer showed and reports it as one decision. During the first
 * sync nothing is reported: it only learns the starting state. */
void policy_sync_begin(struct policy *p);
enum policy_verdict policy_sync_end(struct policy *p, uint64_t now_ms,
                                    struct policy_decision *out);

/* 1 when a window has closed by now_ms (out says which and how many changes
 * it absorbed), 0 when none has; call until 0. */
int      policy_poll(struct policy *p, uint64_t now_ms,
                     struct policy_decision *out);
/* When the next window closes; UINT64_MAX when none is open. */
uint64_t policy_next_deadline(const struct policy *p);
/* Events about interfaces or addresses the full tables could not record. */
uint64_t policy_dropped(const struct policy *p);

#endif
