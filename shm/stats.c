/* stats.c: shared counters and their Prometheus rendering. */
#include "shm/stats.h"

#include <http_parser.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "lib/util/clock.h"

/* Status codes the daemon emits; index into stats.requests[][]. */
static const int status_codes[] = {
    100, 200, 201, 204, 206, 304, 400, 403, 404, 405, 408, 409, 410, 411,
    412, 413, 414, 415, 416, 417, 431, 460, 500, 501, 503, 507,
};
#define NSTATUS (sizeof(status_codes) / sizeof(status_codes[0]))

static const char *method_names[STATS_METHODS] = {
    "GET", "HEAD", "PUT", "POST", "PATCH", "OPTIONS", "DELETE", "other", "",
};

static int
method_index(int m)
{
    switch (m) {
    case HTTP_GET: return 0;
    case HTTP_HEAD: return 1;
    case HTTP_PUT: return 2;
    case HTTP_POST: return 3;
    case HTTP_PATCH: return 4;
    case HTTP_OPTIONS: return 5;
    case HTTP_DELETE: return 6;
    default: return 7;
    }
}

struct stats *
stats_create(void)
{
    void *p = mmap(NULL, sizeof(struct stats), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    struct stats *s = p;   /* the kernel hands us zeroed pages */
    s->start_time = clock_wall_seconds();
    return s;
}

int
stats_slot_claim(struct stats *s, pid_t pid)
{
    for (int i = 0; i < STATS_SLOTS; i++)
        if (s->slots[i].pid == 0) {
            s->slots[i].connections = 0;
            s->slots[i].uploads = 0;
            s->slots[i].paused = 0;
            s->slots[i].forgetting = 0;
            s->slots[i].pid = pid;
            return i;
        }
    return -1;
}

void
stats_slot_release(struct stats *s, pid_t pid)
{
    for (int i = 0; i < STATS_SLOTS; i++)
        if (s->slots[i].pid == pid) {
            s->slots[i].connections = 0;
            s->slots[i].uploads = 0;
            s->slots[i].paused = 0;
            s->slots[i].pid = 0;
        }
}

bool
stats_dead_push(struct stats *s, pid_t pid)
{
    for (int i = 0; i < STATS_DEAD_MAX; i++) {
        pid_t zero = 0;
        if (atomic_compare_exchange_strong(&s->dead[i], &zero, pid))
            return true;
    }
    s->dead_dropped++;
    return false;
}

pid_t
stats_dead_take(struct stats *s, struct stats_slot *mine)
{
    for (int i = 0; i < STATS_DEAD_MAX; i++) {
        pid_t pid = atomic_load(&s->dead[i]);
        if (pid == 0)
            continue;
        /* Named as ours before it leaves the queue: killed in between,
         * it is queued twice at worst (forgetting twice is harmless). */
        atomic_store(&mine->forgetting, pid);
        if (atomic_compare_exchange_strong(&s->dead[i], &pid, 0))
            return pid;
        atomic_store(&mine->forgetting, 0);
    }
    return 0;
}

bool
stats_dead_pending(const struct stats *s)
{
    for (int i = 0; i < STATS_DEAD_MAX; i++)
        if (atomic_load(&s->dead[i]) != 0)
            return true;
    for (int i = 0; i < STATS_SLOTS; i++)
        if (s->slots[i].pid != 0 && atomic_load(&s->slots[i].forgetting) != 0)
            return true;
    return false;
}

void
stats_dead_requeue(struct stats *s, struct stats_slot *dead)
{
    pid_t pid = atomic_exchange(&dead->forgetting, 0);
    if (pid != 0) {
        stats_dead_push(s, pid);
        atomic_store(&s->dead_sweep, 1);
    }
}

bool
stats_pid_live(const struct stats *s, pid_t pid)
{
    for (int i = 0; i < STATS_SLOTS; i++)
        if (s->slots[i].pid == pid)
            return true;
    return false;
}

void
stats_count_request(struct stats *s, int method, int status)
{
    for (size_t i = 0; i < NSTATUS; i++)
        if (status_codes[i] == status) {
            s->requests[method_index(method)][i]++;
            return;
        }
}

struct out { char *buf; size_t len, used; int overflow; };

static void __attribute__((format(printf, 2, 3)))
emit(struct out *o, const char *fmt, ...)
{
    va_list ap;
    if (o->overflow)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->len - o->used)
        o->overflow = 1;
    else
        o->used += (size_t)n;
}

int
stats_render(const struct stats *s, char *buf, size_t len)
{
    struct out o = { buf, len, 0, 0 };
    int64_t conns = 0, uploads = 0, paused = 0;

    for (int i = 0; i < STATS_SLOTS; i++)
        if (s->slots[i].pid != 0) {
            conns += s->slots[i].connections;
            uploads += s->slots[i].uploads;
            paused += s->slots[i].paused;
        }
    emit(&o, "# HELP hfs_requests_total HTTP requests answered, by method and status.\n"
             "# TYPE hfs_requests_total counter\n");
    for (int m = 0; m < STATS_METHODS - 1; m++)
        for (size_t i = 0; i < NSTATUS; i++)
            if (s->requests[m][i])
                emit(&o, "hfs_requests_total{method=\"%s\",status=\"%d\"} %llu\n",
                     method_names[m], status_codes[i],
                     (unsigned long long)s->requests[m][i]);
    emit(&o, "# HELP hfs_limit_refusals_total Connections and uploads refused by a per-address limit.\n"
             "# TYPE hfs_limit_refusals_total counter\n"
             "hfs_limit_refusals_total{limit=\"connections_per_address\"} %llu\n"
             "hfs_limit_refusals_total{limit=\"uploads_per_address\"} %llu\n",
         (unsigned long long)s->refused_conns,
         (unsigned long long)s->refused_uploads);
#define COUNTER(name, help, v) \
    emit(&o, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n", \
         (unsigned long long)(v))
#define GAUGE(name, help, v) \
    emit(&o, "# HELP " name " " help "\n# TYPE " name " gauge\n" name " %lld\n", \
         (long long)(v))
    COUNTER("hfs_bytes_received_total", "Request body bytes received.", s->bytes_in);
    COUNTER("hfs_bytes_sent_total", "Response bytes sent.", s->bytes_out);
    GAUGE("hfs_connections_active", "Open client connections.", conns);
    GAUGE("hfs_uploads_in_progress", "Request bodies being received.", uploads);
    COUNTER("hfs_worker_restarts_total", "Workers replaced after dying.", s->worker_restarts);
    COUNTER("hfs_network_changes_total", "Network changes that paused uploads.", s->network_changes);
    GAUGE("hfs_uploads_paused", "Uploads paused by a network change now.", paused);
    COUNTER("hfs_uploads_paused_total", "Uploads paused by network changes.", s->uploads_paused);
    COUNTER("hfs_checkpoints_total", "Upload checkpoints made durable on network changes.", s->checkpoints);
    COUNTER("hfs_session_syncs_total", "fsyncs and fdatasyncs of resumable sessions' manifests, data and directories made by requests.", s->session_syncs);
    COUNTER("hfs_writeback_bytes_total", "Upload bytes whose write-back was started while the body still arrived.", s->writeback_bytes);
    COUNTER("hfs_digest_reread_bytes_total", "Upload bytes read back from disk to check the SHA-256 the client announced (not hashed as they arrived).", s->digest_reread_bytes);
    emit(&o, "# HELP hfs_storage_errors_total Storage calls that failed, by "
             "operation; nothing that depended on them was acknowledged.\n"
             "# TYPE hfs_storage_errors_total counter\n");
    for (int i = 0; i < STATS_STORE_OPS; i++)
        emit(&o, "hfs_storage_errors_total{op=\"%s\"} %llu\n",
             (const char *[]){ "write", "commit", "publish" }[i],
             (unsigned long long)s->storage_errors[i]);
    emit(&o, "# HELP hfs_syncs_total fsync and fdatasync calls made for "
             "uploads, of file data and of directories.\n"
             "# TYPE hfs_syncs_total counter\n"
             "hfs_syncs_total{kind=\"data\"} %llu\n"
             "hfs_syncs_total{kind=\"dir\"} %llu\n",
         (unsigned long long)s->syncs_data,
         (unsigned long long)s->syncs_dir);
    COUNTER("hfs_sync_batches_total", "Group commits of storage.sync = batch.", s->sync_batches);
    GAUGE("hfs_config_generation", "Configuration generation (1 at start, +1 per successful reload).", s->config_generation);
    GAUGE("hfs_last_reload_success", "1 if the last reload succeeded.", s->last_reload_ok);
    GAUGE("hfs_last_reload_timestamp_seconds", "Unix time of the last reload attempt.", s->last_reload_time);
    GAUGE("hfs_start_time_seconds", "Unix time the master started.", s->start_time);
#undef COUNTER
#undef GAUGE
    return o.overflow ? -1 : (int)o.used;
}
