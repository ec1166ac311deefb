/* test_conf.c: the loader against real files and strings: defaults, every
 * field round-tripped, and each class of error with its FILE:LINE: key. */
#include "tests/unit/unit.h"

#include "lib/conf/conf.h"
#include "lib/util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct conf c;
static char        err[1024];

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    CU_ASSERT_FATAL(f != NULL);
    fputs(text, f);
    fclose(f);
}

static char *
read_text(const char *path)
{
    FILE  *f = fopen(path, "r");
    char  *buf;
    size_t n;

    CU_ASSERT_FATAL(f != NULL);
    buf = calloc(1, 1 << 20);
    CU_ASSERT_FATAL(buf != NULL);
    n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int
load(const char *text)
{
    err[0] = '\0';
    return conf_load_string(text, "t.conf", &c, err, sizeof(err));
}

/* The message must start with want ("t.conf:3: server.workers: ") and
 * contain what; prints the message when it does not, to save a debug run. */
static void
expect_err(const char *text, const char *want, const char *what)
{
    int ok = load(text) == -1 && strncmp(err, want, strlen(want)) == 0 &&
             strstr(err, what) != NULL;

    if (!ok)
        printf("    want \"%s...%s\", got \"%s\"\n", want, what, err);
    CU_ASSERT(ok);
}

#define SEC "security: { secrets = [ \"k\" ]; };\n"

static void
test_defaults(void)
{
    memset(&c, 0xa5, sizeof(c));
    conf_defaults(&c);
    CU_ASSERT_EQUAL(c.nlisten, 1);
    CU_ASSERT_STRING_EQUAL(c.listen[0].addr, "127.0.0.1");
    CU_ASSERT_EQUAL(c.listen[0].port, 8080);
    CU_ASSERT_FALSE(c.listen[0].tls);
    CU_ASSERT_EQUAL(c.workers, 0);
    CU_ASSERT_EQUAL(c.max_connections, 4096);
    CU_ASSERT_EQUAL(c.max_conns_per_addr, 512);
    CU_ASSERT_EQUAL(c.max_uploads_per_addr, 128);
    CU_ASSERT_EQUAL(c.headertimeout, 20);
    CU_ASSERT_STRING_EQUAL(c.user, "");
    CU_ASSERT_STRING_EQUAL(c.group, "");
    CU_ASSERT_STRING_EQUAL(c.pidfile, "");
    CU_ASSERT_EQUAL(c.shutdown_grace, 30);
    CU_ASSERT_STRING_EQUAL(c.url_prefix, "/");
    CU_ASSERT_STRING_EQUAL(c.storage_dir, "./var/storage");
    CU_ASSERT_STRING_EQUAL(c.staging_dir, "./var/staging");
    CU_ASSERT_EQUAL(c.max_upload_size, 1ULL << 30);
    CU_ASSERT_EQUAL(c.min_free_bytes, 64ULL << 20);
    CU_ASSERT_EQUAL(c.file_mode, 0644);
    CU_ASSERT_EQUAL(c.dir_mode, 0755);
    CU_ASSERT_EQUAL(c.nsecrets, 0);
    CU_ASSERT_EQUAL(c.token_max_lifetime, 86400);
    CU_ASSERT_EQUAL(c.ncors_origins, 1);
    CU_ASSERT_STRING_EQUAL(c.cors_origins[0], "*");
    CU_ASSERT_EQUAL(c.readtimeout, 300);
    CU_ASSERT_EQUAL(c.writetimeout, 300);
    CU_ASSERT_EQUAL(c.idletimeout, 600);
    CU_ASSERT_EQUAL(c.uploadtimeout, 3600);
    CU_ASSERT_TRUE(c.networkchangedetection);
    CU_ASSERT_TRUE(c.uploadpauseonchange);
    CU_ASSERT_EQUAL(c.reconnectdelay, 2);
    CU_ASSERT_EQUAL(c.keepaliveinterval, 30);
    CU_ASSERT_EQUAL(c.keepalivecount, 4);
    CU_ASSERT_STRING_EQUAL(c.shm_name, "/hmac-file-server");
    CU_ASSERT_EQUAL(c.session_capacity, 4096);
    CU_ASSERT_EQUAL(c.sessiontimeout, 86400);
    CU_ASSERT_EQUAL(c.chunk_max_size, 64ULL << 20);
    CU_ASSERT_EQUAL(c.chunk_size, 5ULL << 20);
    CU_ASSERT_EQUAL(c.resumable_min_size, 256ULL << 10);
    CU_ASSERT_TRUE(c.resumable_uploads);
    CU_ASSERT_TRUE(c.chunked_uploads);
    CU_ASSERT_EQUAL(c.max_retries, 3);
    CU_ASSERT_STRING_EQUAL(c.tls_cert, "");
    CU_ASSERT_STRING_EQUAL(c.tls_key, "");
    CU_ASSERT_STRING_EQUAL(c.log_target, "stderr");
    CU_ASSERT_EQUAL(c.log_level, LOG_LVL_INFO);
    CU_ASSERT_EQUAL(c.sync_mode, CONF_SYNC_ALWAYS);
    CU_ASSERT_EQUAL(c.sync_window_ms, 2);
    CU_ASSERT_EQUAL(c.sync_batch_max, 64);

    /* A file with only a secret is the defaults plus that secret. */
    CU_ASSERT_EQUAL_FATAL(load(SEC), 0);
    CU_ASSERT_EQUAL(c.nlisten, 1);
    CU_ASSERT_EQUAL(c.chunk_max_size, 64ULL << 20);
    CU_ASSERT_EQUAL(c.chunk_size, 5ULL << 20);
    CU_ASSERT_STRING_EQUAL(c.source, "t.conf");
    CU_ASSERT_EQUAL(c.nsecrets, 1);
}

static const char full_fmt[] =
    "server: {\n"
    "  listen = [ \"10.1.2.3:81\", \"[::1]:8081\", \"tls:0.0.0.0:8443\",\n"
    "             \"tls:[2001:db8:0::1]:443\" ];\n"
    "  workers = 3; max_connections = 100;\n"
    "  max_connections_per_address = 0; max_uploads_per_address = 7;\n"
    "  user = \"nobody\"; group = \"nogroup\";\n"
    "  pidfile = \"/run/x.pid\"; shutdown_grace = \"2m\";\n"
    "  url_prefix = \"/up-load/v1/\";\n"
    "};\n"
    "storage: { dir = \"/srv/files\"; staging = \"/srv/staging\";\n"
    "  max_upload_size = \"2T\"; min_free = 0; };\n"
    "security: {\n"
    "  secrets = [ \"s3cret\", \"old-secret\" ];\n"
    "  secret_files = [ \"%s/secret\" ];\n"
    "  token_max_lifetime = \"2h\";\n"
    "  cors_origins = [ \"https://chat.example.org\", \"http://a:8080\" ];\n"
    "};\n"
    "timeouts: { headertimeout = \"5s\"; readtimeout = 11; "
    "writetimeout = \"12s\"; "
    "idletimeout = \"1m\";\n"
    "  uploadtimeout = \"1d\"; };\n"
    "network: { networkchangedetection = false; uploadpauseonchange = false;\n"
    "  reconnectdelay = 0; keepaliveinterval = 32767; keepalivecount = 9; };\n"
    "uploads: { shm_name = \"/hfs-test\"; session_capacity = 77;\n"
    "  sessiontimeout = \"3h\"; chunk_max_size = 4096;\n"
    "  resumable_min_size = \"1M\"; resumableuploadsenabled = false;\n"
    "  chunkeduploadsenabled = false; maxretries = 0; };\n"
    "tls: { certificate = \"%s/cert.pem\"; key = \"%s/key.pem\"; };\n"
    "logging: { target = \"%s/log\"; level = \"debug\"; };\n";

static void
check_full(const char *dir)
{
    char path[1200];

    CU_ASSERT_EQUAL(c.nlisten, 4);
    CU_ASSERT_STRING_EQUAL(c.listen[0].addr, "10.1.2.3");
    CU_ASSERT_EQUAL(c.listen[0].port, 81);
    CU_ASSERT_FALSE(c.listen[0].tls);
    CU_ASSERT_STRING_EQUAL(c.listen[1].addr, "::1");
    CU_ASSERT_EQUAL(c.listen[1].port, 8081);
    CU_ASSERT_STRING_EQUAL(c.listen[2].addr, "0.0.0.0");
    CU_ASSERT_TRUE(c.listen[2].tls);
    CU_ASSERT_STRING_EQUAL(c.listen[3].addr, "2001:db8::1");
    CU_ASSERT_EQUAL(c.listen[3].port, 443);
    CU_ASSERT_TRUE(c.listen[3].tls);
    CU_ASSERT_EQUAL(c.workers, 3);
    CU_ASSERT_EQUAL(c.max_connections, 100);
    CU_ASSERT_EQUAL(c.max_conns_per_addr, 0);
    CU_ASSERT_EQUAL(c.max_uploads_per_addr, 7);
    CU_ASSERT_STRING_EQUAL(c.user, "nobody");
    CU_ASSERT_STRING_EQUAL(c.group, "nogroup");
    CU_ASSERT_STRING_EQUAL(c.pidfile, "/run/x.pid");
    CU_ASSERT_EQUAL(c.shutdown_grace, 120);
    CU_ASSERT_STRING_EQUAL(c.url_prefix, "/up-load/v1/");
    CU_ASSERT_STRING_EQUAL(c.storage_dir, "/srv/files");
    CU_ASSERT_STRING_EQUAL(c.staging_dir, "/srv/staging");
    CU_ASSERT_EQUAL(c.max_upload_size, 2ULL << 40);
    CU_ASSERT_EQUAL(c.min_free_bytes, 0);
    CU_ASSERT_EQUAL_FATAL(c.nsecrets, 3);
    CU_ASSERT_EQUAL(c.secrets[0].len, 6);
    CU_ASSERT(memcmp(c.secrets[0].key, "s3cret", 6) == 0);
    CU_ASSERT_EQUAL(c.secrets[1].len, 10);
    CU_ASSERT(memcmp(c.secrets[1].key, "old-secret", 10) == 0);
    CU_ASSERT_EQUAL(c.secrets[2].len, 9);       /* newline stripped */
    CU_ASSERT(memcmp(c.secrets[2].key, "from\0file", 9) == 0);
    CU_ASSERT_EQUAL(c.token_max_lifetime, 7200);
    CU_ASSERT_EQUAL(c.ncors_origins, 2);
    CU_ASSERT_STRING_EQUAL(c.cors_origins[0], "https://chat.example.org");
    CU_ASSERT_STRING_EQUAL(c.cors_origins[1], "http://a:8080");
    CU_ASSERT_EQUAL(c.headertimeout, 5);
    CU_ASSERT_EQUAL(c.readtimeout, 11);
    CU_ASSERT_EQUAL(c.writetimeout, 12);
    CU_ASSERT_EQUAL(c.idletimeout, 60);
    CU_ASSERT_EQUAL(c.uploadtimeout, 86400);
    CU_ASSERT_FALSE(c.networkchangedetection);
    CU_ASSERT_FALSE(c.uploadpauseonchange);
    CU_ASSERT_EQUAL(c.reconnectdelay, 0);
    CU_ASSERT_EQUAL(c.keepaliveinterval, 32767);
    CU_ASSERT_EQUAL(c.keepalivecount, 9);
    CU_ASSERT_STRING_EQUAL(c.shm_name, "/hfs-test");
    CU_ASSERT_EQUAL(c.session_capacity, 77);
    CU_ASSERT_EQUAL(c.sessiontimeout, 3 * 3600);
    CU_ASSERT_EQUAL(c.chunk_max_size, 4096);
    CU_ASSERT_EQUAL(c.resumable_min_size, 1ULL << 20);
    CU_ASSERT_FALSE(c.resumable_uploads);
    CU_ASSERT_FALSE(c.chunked_uploads);
    CU_ASSERT_EQUAL(c.max_retries, 0);
    snprintf(path, sizeof(path), "%s/cert.pem", dir);
    CU_ASSERT_STRING_EQUAL(c.tls_cert, path);
    snprintf(path, sizeof(path), "%s/key.pem", dir);
    CU_ASSERT_STRING_EQUAL(c.tls_key, path);
    snprintf(path, sizeof(path), "%s/log", dir);
    CU_ASSERT_STRING_EQUAL(c.log_target, path);
    CU_ASSERT_EQUAL(c.log_level, LOG_LVL_DEBUG);
}

static void
test_full_roundtrip(void)
{
    char *dir = unit_mkdtemp();
    char  text[4096], path[1200];
    FILE *f;

    snprintf(path, sizeof(path), "%s/secret", dir);
    f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fwrite("from\0file\r\n", 1, 11, f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/cert.pem", dir);
    write_file(path, "cert");
    snprintf(path, sizeof(path), "%s/key.pem", dir);
    write_file(path, "key");
    snprintf(text, sizeof(text), full_fmt, dir, dir, dir, dir);
    snprintf(path, sizeof(path), "%s/full.conf", dir);
    write_file(path, text);

    memset(&c, 0, sizeof(c));
    CU_ASSERT_EQUAL(conf_load(path, &c, err, sizeof(err)), 0);
    if (err[0] != '\0')
        printf("    %s\n", err);
    CU_ASSERT_STRING_EQUAL(c.source, path);
    check_full(dir);
    unit_rmtree(dir);
    free(dir);
}

static void
test_unknown(void)
{
    expect_err(SEC "server: {\n  workers = 2;\n  wrokers = 2;\n};\n",
               "t.conf:4: server.wrokers: ", "unknown key");
    expect_err(SEC "\n\nsrever: { workers = 2; };\n",
               "t.conf:4: srever: ", "unknown group");
    expect_err(SEC "workers = 2;\n", "t.conf:2: workers: ", "outside");
    expect_err("tls: { certificate = \"\"; cert = \"x\"; };\n" SEC,
               "t.conf:1: tls.cert: ", "unknown key");
}

static void
test_wrong_type(void)
{
    expect_err(SEC "server: {\n workers = \"2\";\n};\n",
               "t.conf:3: server.workers: ", "expected an integer");
    expect_err(SEC "server: { workers = 2.0; };\n",
               "t.conf:2: server.workers: ", "expected an integer");
    expect_err(SEC "network: {\n\n networkchangedetection = 1; };\n",
               "t.conf:4: network.networkchangedetection: ", "true or false");
    expect_err(SEC "server: { listen = \"127.0.0.1:80\"; };\n",
               "t.conf:2: server.listen: ", "expected a list");
    expect_err(SEC "server: { listen = ( \"127.0.0.1:80\",\n 8080 ); };\n",
               "t.conf:3: server.listen[1]: ", "expected a string");
    expect_err(SEC "server: { user = 0; };\n",
               "t.conf:2: server.user: ", "expected a string");
    expect_err(SEC "server = 1;\n", "t.conf:2: server: ", "expected a group");
    expect_err(SEC "logging: { level = \"verbose\"; };\n",
               "t.conf:2: logging.level: ", "unknown level");
    expect_err(SEC "logging: { target = \"sylog\"; };\n",
               "t.conf:2: logging.target: ", "syslog");
}

static void
test_sync_mode(void)
{
    CU_ASSERT_EQUAL_FATAL(load(SEC "storage: { sync = \"batch\"; "
                               "sync_window_ms = 0; sync_batch_max = 1024; };\n"),
                          0);
    CU_ASSERT_EQUAL(c.sync_mode, CONF_SYNC_BATCH);
    CU_ASSERT_EQUAL(c.sync_window_ms, 0);
    CU_ASSERT_EQUAL(c.sync_batch_max, 1024);
    CU_ASSERT_EQUAL_FATAL(load(SEC "storage: { sync = \"off\"; };\n"), 0);
    CU_ASSERT_EQUAL(c.sync_mode, CONF_SYNC_OFF);
    CU_ASSERT_EQUAL_FATAL(load(SEC "storage: { sync = \"always\"; };\n"), 0);
    CU_ASSERT_EQUAL(c.sync_mode, CONF_SYNC_ALWAYS);
    expect_err(SEC "storage: {\n sync = \"sometimes\"; };\n",
               "t.conf:3: storage.sync: ", "unknown mode \"sometimes\" "
               "(always, batch, off)");
    expect_err(SEC "storage: { sync = \"Always\"; };\n",
               "t.conf:2: storage.sync: ", "unknown mode");
    expect_err(SEC "storage: { sync = true; };\n",
               "t.conf:2: storage.sync: ", "expected a string");
    expect_err(SEC "storage: { sync_window_ms = 101; };\n",
               "t.conf:2: storage.sync_window_ms: ", "");
    expect_err(SEC "storage: { sync_window_ms = -1; };\n",
               "t.conf:2: storage.sync_window_ms: ", "");
    expect_err(SEC "storage: { sync_batch_max = 0; };\n",
               "t.conf:2: storage.sync_batch_max: ", "");
    expect_err(SEC "storage: { sync_batch_max = 1025; };\n",
               "t.conf:2: storage.sync_batch_max: ", "");
}

static void
test_sizes(void)
{
    static const char *bad[] = { "\"10X\"", "\"1.5G\"", "\"-1G\"", "\"\"",
                                 "\" 1G\"", "\"5XB\"", "\"G\"", "\"GB\"",
                                 "\"5 MB\"", "\"5MB \"", "\"5MBB\"",
                                 "\"5BM\"", "\"5iB\"", "\"5Mi\"", "\"+5M\"",
                                 "\"0x10\"", "\"5e3\"", "\"5s\"" };
    char text[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text),
                 SEC "storage: {\n max_upload_size = %s; };\n", bad[i]);
        expect_err(text, "t.conf:3: storage.max_upload_size: ", "bad size");
    }
    expect_err(SEC "storage: { max_upload_size = \"99999999999T\"; };\n",
               "t.conf:2: storage.max_upload_size: ", "too large");
    expect_err(SEC "storage: { max_upload_size = "
               "\"99999999999999999999\"; };\n",
               "t.conf:2: storage.max_upload_size: ", "too large");
    expect_err(SEC "storage: { max_upload_size = -1; };\n",
               "t.conf:2: storage.max_upload_size: ", "negative");
    expect_err(SEC "storage: { max_upload_size = 0; };\n",
               "t.conf:2: storage.max_upload_size: ", "at least 1");
    expect_err(SEC "uploads: { chunk_max_size = \"0K\"; };\n",
               "t.conf:2: uploads.chunk_max_size: ", "at least 1");
    expect_err(SEC "uploads: {\n chunk_max_size = \"4M\";\n"
               " chunksize = 4194305; };\n", "t.conf:4: uploads.chunksize: ",
               "must not exceed uploads.chunk_max_size (4194305 > 4194304 "
               "bytes)");
    CU_ASSERT_EQUAL(load(SEC "uploads: { chunk_max_size = \"4M\"; "
                         "chunksize = \"4M\"; };"), 0);
    CU_ASSERT_EQUAL(c.chunk_size, 4ULL << 20);
    CU_ASSERT_EQUAL(load(SEC "uploads: { chunksize = \"1M\"; };"), 0);
    CU_ASSERT_EQUAL(c.chunk_size, 1ULL << 20);
    /* the default (5M) follows a smaller chunk_max_size */
    CU_ASSERT_EQUAL(load(SEC "uploads: { chunk_max_size = \"1M\"; };"), 0);
    CU_ASSERT_EQUAL(c.chunk_size, 1ULL << 20);

    CU_ASSERT_EQUAL(load(SEC "storage: { max_upload_size = \"3k\"; "
                         "min_free = \"7M\"; };"), 0);
    CU_ASSERT_EQUAL(c.max_upload_size, 3072);
    CU_ASSERT_EQUAL(c.min_free_bytes, 7ULL << 20);
    CU_ASSERT_EQUAL(load(SEC "storage: { max_upload_size = 5368709120L; };"),
                    0);
    CU_ASSERT_EQUAL(c.max_upload_size, 5ULL << 30);
    expect_err(SEC "uploads: { chunksize = \"16777216TB\"; };\n",
               "t.conf:2: uploads.chunksize: ", "too large");
    expect_err(SEC "uploads: { chunksize = \"8388608TB\"; };\n",
               "t.conf:2: uploads.chunksize: ", "too large");
}

/* The seed's spellings: KB/MB/GB/TB (and KiB...) are binary like K/M/G/T,
 * in any case, and B or nothing is bytes. */
static void
test_size_units(void)
{
    static const struct { const char *text; uint64_t want; } ok[] = {
        { "\"5MB\"", 5ULL << 20 },   { "\"5mb\"", 5ULL << 20 },
        { "\"5Mb\"", 5ULL << 20 },   { "\"5MiB\"", 5ULL << 20 },
        { "\"5M\"", 5ULL << 20 },    { "\"512KB\"", 512ULL << 10 },
        { "\"512kib\"", 512ULL << 10 }, { "\"2GB\"", 2ULL << 30 },
        { "\"1TB\"", 1ULL << 40 },   { "\"1TiB\"", 1ULL << 40 },
        { "\"8192\"", 8192 },        { "\"8192B\"", 8192 },
        { "\"7b\"", 7 },             { "8192", 8192 },
        { "\"8388607TB\"", 8388607ULL << 40 },
    };
    char text[256];

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        /* chunksize may not exceed chunk_max_size: raise both. */
        snprintf(text, sizeof(text), SEC "uploads: { chunk_max_size = %s; "
                 "chunksize = %s; };\n", ok[i].text, ok[i].text);
        CU_ASSERT_EQUAL(load(text), 0);
        if (c.chunk_size != ok[i].want)
            printf("    %s: got %llu: %s\n", ok[i].text,
                   (unsigned long long)c.chunk_size, err);
        CU_ASSERT_EQUAL(c.chunk_size, ok[i].want);
    }
    expect_err(SEC "uploads: {\n chunksize = \"5XB\"; };\n",
               "t.conf:3: uploads.chunksize: ", "bad size \"5XB\"");
    expect_err(SEC "uploads: { chunksize = \"0MB\"; };\n",
               "t.conf:2: uploads.chunksize: ", "at least 1");
}

/* libconfig 1.5 would read 5368709120 as 1073741824 without a word. */
static void
test_int_wrap(void)
{
    expect_err(SEC "storage: {\n max_upload_size = 5368709120; };\n",
               "t.conf:3: storage.max_upload_size: ", "32 bits");
    expect_err(SEC "server: { workers = 4294967298; };\n",
               "t.conf:2: server.workers: ", "32 bits");
    expect_err(SEC "server: { workers = 0x100000002; };\n",
               "t.conf:2: server.workers: ", "32 bits");
    /* Big numbers in strings and comments on the line are not literals. */
    CU_ASSERT_EQUAL(load(SEC "server: { workers = 2; # 99999999999\n"
                         "  user = \"u99999999999\"; };\n"), 0);
    CU_ASSERT_EQUAL(c.workers, 2);
}

static void
test_durations(void)
{
    expect_err(SEC "timeouts: {\n readtimeout = -5; };\n",
               "t.conf:3: timeouts.readtimeout: ", "negative");
    expect_err(SEC "timeouts: { readtimeout = \"-5s\"; };\n",
               "t.conf:2: timeouts.readtimeout: ", "bad duration");
    expect_err(SEC "timeouts: { readtimeout = \"5w\"; };\n",
               "t.conf:2: timeouts.readtimeout: ", "bad duration");
    expect_err(SEC "timeouts: { readtimeout = \"5 s\"; };\n",
               "t.conf:2: timeouts.readtimeout: ", "bad duration");
    expect_err(SEC "timeouts: { readtimeout = 0; };\n",
               "t.conf:2: timeouts.readtimeout: ", "at least 1");
    expect_err(SEC "timeouts: { uploadtimeout = \"8d\"; };\n",
               "t.conf:2: timeouts.uploadtimeout: ", "at most 604800");
    expect_err(SEC "network: { keepaliveinterval = \"10h\"; };\n",
               "t.conf:2: network.keepaliveinterval: ", "at most 32767");
    expect_err(SEC "network: { keepalivecount = 128; };\n",
               "t.conf:2: network.keepalivecount: ", "at most 127");
    expect_err(SEC "server: { workers = 257; };\n",
               "t.conf:2: server.workers: ", "at most 256");
    expect_err("security: { secrets = [\"k\"];\n"
               " token_max_lifetime = \"999999999999999999d\"; };\n",
               "t.conf:2: security.token_max_lifetime: ", "too large");
    CU_ASSERT_EQUAL(load(SEC "server: { shutdown_grace = 0; };\n"
                         "timeouts: { idletimeout = \"90m\"; };\n"), 0);
    CU_ASSERT_EQUAL(c.shutdown_grace, 0);
    CU_ASSERT_EQUAL(c.idletimeout, 5400);
    /* The seed's forms. */
    CU_ASSERT_EQUAL(load(SEC "timeouts: { readtimeout = \"300s\"; "
                         "writetimeout = \"5m\"; idletimeout = \"1d\"; "
                         "uploadtimeout = \"3600\"; };\n"
                         "network: { reconnectdelay = \"2s\"; };\n"
                         "uploads: { sessiontimeout = \"24h\"; };\n"), 0);
    CU_ASSERT_EQUAL(c.readtimeout, 300);
    CU_ASSERT_EQUAL(c.writetimeout, 300);
    CU_ASSERT_EQUAL(c.idletimeout, 86400);
    CU_ASSERT_EQUAL(c.uploadtimeout, 3600);
    CU_ASSERT_EQUAL(c.reconnectdelay, 2);
    CU_ASSERT_EQUAL(c.sessiontimeout, 86400);
    expect_err(SEC "timeouts: { readtimeout = \"-1s\"; };\n",
               "t.conf:2: timeouts.readtimeout: ", "bad duration");
    expect_err(SEC "timeouts: { readtimeout = \"5S\"; };\n",
               "t.conf:2: timeouts.readtimeout: ", "bad duration");
    expect_err(SEC "timeouts: { readtimeout = \"5MB\"; };\n",
               "t.conf:2: timeouts.readtimeout: ", "bad duration");
    expect_err(SEC "timeouts: { readtimeout = \"1h30m\"; };\n",
               "t.conf:2: timeouts.readtimeout: ", "bad duration");
    expect_err(SEC "timeouts: { readtimeout = \"200ms\"; };\n",
               "t.conf:2: timeouts.readtimeout: ", "bad duration");
    expect_err(SEC "uploads: { sessiontimeout = \"213503982334601d\"; };\n",
               "t.conf:2: uploads.sessiontimeout: ", "too large");
    expect_err(SEC "uploads: { sessiontimeout = \"106751991167300d\"; };\n",
               "t.conf:2: uploads.sessiontimeout: ", "at most");
}

static void
test_upload_switches(void)
{
    CU_ASSERT_EQUAL(load(SEC "uploads: { resumableuploadsenabled = false;\n"
                         " chunkeduploadsenabled = false; maxretries = 10; };"),
                    0);
    CU_ASSERT_FALSE(c.resumable_uploads);
    CU_ASSERT_FALSE(c.chunked_uploads);
    CU_ASSERT_EQUAL(c.max_retries, 10);
    expect_err(SEC "uploads: {\n resumableuploadsenabled = \"no\"; };\n",
               "t.conf:3: uploads.resumableuploadsenabled: ", "true or false");
    expect_err(SEC "uploads: { chunkeduploadsenabled = 1; };\n",
               "t.conf:2: uploads.chunkeduploadsenabled: ", "true or false");
    expect_err(SEC "uploads: { maxretries = 11; };\n",
               "t.conf:2: uploads.maxretries: ", "at most 10");
    expect_err(SEC "uploads: { maxretries = -1; };\n",
               "t.conf:2: uploads.maxretries: ", "negative");
    expect_err(SEC "uploads: { maxretries = \"3\"; };\n",
               "t.conf:2: uploads.maxretries: ", "expected an integer");
    /* Keys of the Go server this daemon does not implement stay errors. */
    expect_err(SEC "uploads: { allowedextensions = [ \".txt\" ]; };\n",
               "t.conf:2: uploads.allowedextensions: ", "unknown key");
    expect_err(SEC "uploads: { chunk_size = \"5MB\"; };\n",
               "t.conf:2: uploads.chunk_size: ", "unknown key");
}

static void
test_listen(void)
{
    static const char *bad[] = {
        "localhost:80", "::1:80", "1.2.3.4", "[::1]80", "[::1:80",
        "1.2.3:80", "1.2.3.4:", "1.2.3.4:http", "1.2.3.4:+80", ":80",
        "[fe80::1%eth0]:80", "tls:", "TLS:1.2.3.4:80", "1.2.3.4 :80",
    };
    char text[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), SEC "server: { listen = [\n"
                 "  \"127.0.0.1:1\",\n  \"%s\" ]; };\n", bad[i]);
        expect_err(text, "t.conf:4: server.listen[1]: ", "");
    }
    expect_err(SEC "server: { listen = [\n \"1.2.3.4:0\" ]; };\n",
               "t.conf:3: server.listen[0]: ", "1..65535");
    expect_err(SEC "server: { listen = [\n\n \"[::]:70000\" ]; };\n",
               "t.conf:4: server.listen[0]: ", "1..65535");
    expect_err(SEC "server: { listen = [ \"1.2.3.4:80\",\n"
               " \"1.2.3.4:80\" ]; };\n",
               "t.conf:3: server.listen[1]: ", "duplicate");
    expect_err(SEC "server: { listen = [ \"[::1]:80\",\n"
               " \"[0:0::1]:80\" ]; };\n",
               "t.conf:3: server.listen[1]: ", "duplicate");
    expect_err(SEC "server: { listen = [ ]; };\n",
               "t.conf:2: server.listen: ", "at least one");
    CU_ASSERT_EQUAL(load(SEC "server: { listen = [ \"1.2.3.4:65535\", "
                         "\"1.2.3.4:1\" ]; };"), 0);
    CU_ASSERT_EQUAL(c.nlisten, 2);
    CU_ASSERT_EQUAL(c.listen[0].port, 65535);
}

static void
test_too_many(void)
{
    char   text[4096];
    size_t n;

    n = (size_t)snprintf(text, sizeof(text), SEC "server: {\n listen = [");
    for (int i = 0; i <= CONF_MAX_LISTEN; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"10.0.0.%d:80\"",
                              i ? ", " : "", i + 1);
    snprintf(text + n, sizeof(text) - n, " ]; };\n");
    expect_err(text, "t.conf:3: server.listen: ", "too many");

    n = (size_t)snprintf(text, sizeof(text), "security: {\n cors_origins = [");
    for (int i = 0; i <= CONF_MAX_ORIGINS; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"http://h%d\"",
                              i ? ", " : "", i);
    snprintf(text + n, sizeof(text) - n, " ]; secrets = [\"k\"]; };\n");
    expect_err(text, "t.conf:2: security.cors_origins: ", "too many");

    expect_err("security: {\n secrets = [ \"1\", \"2\", \"3\", \"4\", \"5\", "
               "\"6\", \"7\", \"8\", \"9\" ]; };\n",
               "t.conf:2: security.secrets: ", "too many");
}

static void
test_url_prefix(void)
{
    static const char *bad[] = { "upload", "/upload", "upload/", "",
                                 "/up load/", "/a//b/", "/a/../b/", "/a/./",
                                 "/a?b/", "/%2e/" };
    char text[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), SEC "server: {\n url_prefix = \"%s\";\n"
                 "};\n", bad[i]);
        expect_err(text, "t.conf:3: server.url_prefix: ", "");
    }
    CU_ASSERT_EQUAL(load(SEC "server: { url_prefix = \"/upload/\"; };"), 0);
    CU_ASSERT_STRING_EQUAL(c.url_prefix, "/upload/");
}

static void
test_missing_secret(void)
{
    expect_err("server: { workers = 1; };\n\nsecurity: {\n"
               "  token_max_lifetime = 60;\n};\n",
               "t.conf:3: security.secrets: ", "at least one secret");
    expect_err("server: { workers = 1; };\nsecurity: {\n"
               "  secrets = [];\n};\n",
               "t.conf:3: security.secrets: ", "at least one secret");
    expect_err("", "t.conf:1: security.secrets: ", "at least one secret");
}

static void
test_empty_secret(void)
{
    char big[300], text[512];

    expect_err("security: {\n secrets = [ \"ok\",\n \"\" ]; };\n",
               "t.conf:3: security.secrets[1]: ", "empty secret");
    memset(big, 'Z', 257);
    big[257] = '\0';
    snprintf(text, sizeof(text), "security: {\n secrets = [ \"%s\" ]; };\n",
             big);
    expect_err(text, "t.conf:2: security.secrets[0]: ", "longer than 256");
    CU_ASSERT_PTR_NULL(strstr(err, "ZZZZ"));    /* never echo a secret */
    big[256] = '\0';
    snprintf(text, sizeof(text), "security: {\n secrets = [ \"%s\" ]; };\n",
             big);
    CU_ASSERT_EQUAL(load(text), 0);
    CU_ASSERT_EQUAL(c.secrets[0].len, 256);
    expect_err("security: {\n secrets = [ 42 ]; };\n",
               "t.conf:2: security.secrets[0]: ", "expected a string");
}

#define SECF "security: {\n secret_files = [ \"%s\" ]; };\n"

static void
test_secret_files(void)
{
    char *dir = unit_mkdtemp();
    char  text[2048], path[1200], big[300];

    snprintf(text, sizeof(text), "security: {\n secret_files = [\n"
             " \"%s/none\" ]; };\n", dir);
    expect_err(text, "t.conf:3: security.secret_files[0]: ", "/none: No such");

    snprintf(text, sizeof(text), SECF, dir);
    expect_err(text, "t.conf:2: security.secret_files[0]: ", "regular file");

    snprintf(path, sizeof(path), "%s/nl", dir);
    write_file(path, "\n\n");
    snprintf(text, sizeof(text), SECF, path);
    expect_err(text, "t.conf:2: security.secret_files[0]: ", "empty secret");

    snprintf(path, sizeof(path), "%s/big", dir);
    memset(big, 'Q', 257);
    big[257] = '\0';
    write_file(path, big);
    snprintf(text, sizeof(text), SECF, path);
    expect_err(text, "t.conf:2: security.secret_files[0]: ", "longer than");
    CU_ASSERT_PTR_NULL(strstr(err, "QQQQ"));

    if (geteuid() != 0) {       /* root reads mode 000 files anyway */
        snprintf(path, sizeof(path), "%s/locked", dir);
        write_file(path, "hidden-value");
        chmod(path, 0);
        snprintf(text, sizeof(text), SECF, path);
        expect_err(text, "t.conf:2: security.secret_files[0]: ",
                   "Permission denied");
        CU_ASSERT_PTR_NULL(strstr(err, "hidden-value"));
    }

    snprintf(path, sizeof(path), "%s/ok", dir);
    write_file(path, "rotated\n");
    snprintf(text, sizeof(text), "security: { secrets = [ \"a\", \"b\", "
             "\"c\", \"d\", \"e\", \"f\", \"g\", \"h\" ];\n"
             " secret_files = [ \"%s\" ]; };\n", path);
    expect_err(text, "t.conf:2: security.secret_files[0]: ", "too many");

    unit_rmtree(dir);
    free(dir);
}

static void
test_tls_needs_cert(void)
{
    char *dir = unit_mkdtemp();
    char  text[2048];

    expect_err(SEC "server: { listen = [ \"127.0.0.1:80\",\n"
               "  \"tls:0.0.0.0:8443\" ]; };\n",
               "t.conf:3: server.listen[1]: ", "tls.certificate");
    expect_err(SEC "server: { listen = [ \"tls:0.0.0.0:8443\" ]; };\n"
               "tls: { certificate = \"/x.pem\"; };\n",
               "t.conf:2: server.listen[0]: ", "tls.key");
    snprintf(text, sizeof(text), SEC "server: { listen = "
             "[ \"tls:0.0.0.0:8443\" ]; };\ntls: {\n certificate = \"%s/c\";\n"
             " key = \"%s/k\"; };\n", dir, dir);
    expect_err(text, "t.conf:4: tls.certificate: ", "No such file");
    /* Certificate paths are not opened without a TLS listener. */
    snprintf(text, sizeof(text), SEC "tls: { certificate = \"%s/c\"; "
             "key = \"%s/k\"; };\n", dir, dir);
    CU_ASSERT_EQUAL(load(text), 0);
    unit_rmtree(dir);
    free(dir);
}

static void
test_syntax_error(void)
{
    char *dir = unit_mkdtemp();
    char  path[1200];

    expect_err(SEC "server: {\n  workers = = 2;\n};\n", "t.conf:3: ",
               "syntax error");
    snprintf(path, sizeof(path), "%s/bad.conf", dir);
    write_file(path, "# comment\n\nserver: {\n  listen = [ \"a\" \n");
    CU_ASSERT_EQUAL(conf_load(path, &c, err, sizeof(err)), -1);
    CU_ASSERT(strncmp(err, path, strlen(path)) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":5: syntax error"));
    if (strstr(err, ":5: syntax error") == NULL)
        printf("    got \"%s\"\n", err);

    snprintf(path, sizeof(path), "%s/missing.conf", dir);
    CU_ASSERT_EQUAL(conf_load(path, &c, err, sizeof(err)), -1);
    CU_ASSERT(strncmp(err, path, strlen(path)) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));
    CU_ASSERT_EQUAL(conf_load(dir, &c, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Is a directory"));
    unit_rmtree(dir);
    free(dir);
}

/* @include resolves next to the including file, and errors in the included
 * file name that file and its own line. */
static void
test_include(void)
{
    char *dir = unit_mkdtemp();
    char  path[1200], inc[1200];

    snprintf(inc, sizeof(inc), "%s/inc.conf", dir);
    write_file(inc, "security: { secrets = [ \"k\" ]; };\n");
    snprintf(path, sizeof(path), "%s/main.conf", dir);
    write_file(path, "@include \"inc.conf\"\nserver: { workers = 5; };\n");
    CU_ASSERT_EQUAL(conf_load(path, &c, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(c.workers, 5);
    CU_ASSERT_EQUAL(c.nsecrets, 1);

    write_file(inc, "security: { secrets = [ \"k\" ];\n\n"
               "  bogus = 1; };\n");
    CU_ASSERT_EQUAL(conf_load(path, &c, err, sizeof(err)), -1);
    CU_ASSERT(strncmp(err, inc, strlen(inc)) == 0);
    if (strncmp(err, inc, strlen(inc)) != 0)
        printf("    got \"%s\"\n", err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":3: security.bogus: unknown key"));

    /* The 32-bit wrap check must re-read the included file, not ./inc.conf. */
    write_file(inc, "security: { secrets = [ \"k\" ]; };\n"
               "server: { workers = 4294967298; };\n");
    write_file(path, "@include \"inc.conf\"\n");
    CU_ASSERT_EQUAL(conf_load(path, &c, err, sizeof(err)), -1);
    CU_ASSERT(strncmp(err, inc, strlen(inc)) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":2: server.workers: "));

    write_file(inc, "security: { secrets = [ \"k\" ] };\n\n= 1;\n");
    CU_ASSERT_EQUAL(conf_load(path, &c, err, sizeof(err)), -1);
    CU_ASSERT(strncmp(err, inc, strlen(inc)) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":3: syntax error"));
    if (strstr(err, ":3: syntax error") == NULL)
        printf("    got \"%s\"\n", err);
    unit_rmtree(dir);
    free(dir);
}

static void
test_misc_values(void)
{
    expect_err(SEC "uploads: { shm_name = \"noslash\"; };\n",
               "t.conf:2: uploads.shm_name: ", "/name");
    expect_err(SEC "uploads: { shm_name = \"/a/b\"; };\n",
               "t.conf:2: uploads.shm_name: ", "/name");
#define ORIGIN(o) \
    "security: { secrets = [ \"k\" ];\n cors_origins = [ " o " ]; };"
    expect_err(ORIGIN("\"https://x/\""),
               "t.conf:2: security.cors_origins[0]: ", "scheme://host");
    expect_err(ORIGIN("\"*\", \"example.org\""),
               "t.conf:2: security.cors_origins[1]: ", "scheme://host");
    expect_err(ORIGIN("\"http://a\\r\\nX: y\""),
               "t.conf:2: security.cors_origins[0]: ", "control");
    expect_err(ORIGIN("\"https://\""),
               "t.conf:2: security.cors_origins[0]: ", "scheme://host");
    expect_err(SEC "storage: { dir = \"/a\"; staging = \"/a\"; };\n",
               "t.conf:2: storage.staging: ", "differ");
    expect_err(SEC "storage: { dir = \"\"; };\n",
               "t.conf:2: storage.dir: ", "empty");
    CU_ASSERT_EQUAL(load(SEC "security: { cors_origins = []; };\n"), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "duplicate"));
    CU_ASSERT_EQUAL(load("security: { secrets = [\"k\"]; "
                         "cors_origins = []; };"), 0);
    CU_ASSERT_EQUAL(c.ncors_origins, 0);
}

/* Modes are octal strings; an integer would be read as decimal. */
static void
test_modes(void)
{
    static const char *bad[] = { "\"0648\"", "\"\"", "\"rw-r-----\"",
                                 "\"00644\"", "\"0x1a4\"", "\" 644\"" };
    char text[256];

    CU_ASSERT_EQUAL(load(SEC "storage: { file_mode = \"0640\"; "
                         "dir_mode = \"750\"; };\n"), 0);
    CU_ASSERT_EQUAL(c.file_mode, 0640);
    CU_ASSERT_EQUAL(c.dir_mode, 0750);
    CU_ASSERT_EQUAL(load(SEC "storage: { file_mode = \"0600\"; "
                         "dir_mode = \"0700\"; };\n"), 0);
    CU_ASSERT(c.file_mode == 0600 && c.dir_mode == 0700);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), SEC "storage: {\n file_mode = %s; };\n",
                 bad[i]);
        expect_err(text, "t.conf:3: storage.file_mode: ",
                   i == 1 ? "empty" : "bad mode");
    }
    expect_err(SEC "storage: { file_mode = 0644; };\n",
               "t.conf:2: storage.file_mode: ", "octal string");
    expect_err(SEC "storage: { dir_mode = 493; };\n",
               "t.conf:2: storage.dir_mode: ", "octal string");
    expect_err(SEC "storage: { file_mode = \"4644\"; };\n",
               "t.conf:2: storage.file_mode: ", "setuid");
    expect_err(SEC "storage: { dir_mode = \"1777\"; };\n",
               "t.conf:2: storage.dir_mode: ", "sticky");
    expect_err(SEC "storage: { file_mode = \"0444\"; };\n",
               "t.conf:2: storage.file_mode: ", "owner needs at least 0600");
    expect_err(SEC "storage: { dir_mode = \"0655\"; };\n",
               "t.conf:2: storage.dir_mode: ", "owner needs at least 0700");
}

static void
test_access_log(void)
{
    static const char *good[] = { "off", "syslog", "syslog:/run/x.sock",
                                  "/var/log/a.log", "./a.log" };

    CU_ASSERT_EQUAL(load(SEC), 0);
    CU_ASSERT_STRING_EQUAL(c.access_log, "off");
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), SEC "logging: { access_log = \"%s\"; };",
                 good[i]);
        CU_ASSERT_EQUAL(load(text), 0);
        CU_ASSERT_STRING_EQUAL(c.access_log, good[i]);
    }
    expect_err(SEC "logging: { access_log = \"sylog\"; };\n",
               "t.conf:2: logging.access_log: ", "containing '/'");
    expect_err(SEC "logging: { access_log = \"syslog:run/x\"; };\n",
               "t.conf:2: logging.access_log: ", "absolute path");
    expect_err(SEC "logging: { access_log = \"\"; };\n",
               "t.conf:2: logging.access_log: ", "empty");
}

/* A reload that fails must leave the running configuration as it was. */
static void
test_failure_keeps_output(void)
{
    static struct conf before;

    CU_ASSERT_EQUAL_FATAL(load(SEC "server: { workers = 7; };"), 0);
    memcpy(&before, &c, sizeof(c));
    CU_ASSERT_EQUAL(load("security: { secrets = [ \"other\" ]; };\n"
                         "server: { workers = 9; bogus = 1; };"), -1);
    CU_ASSERT(memcmp(&before, &c, sizeof(c)) == 0);
}

static void
test_shipped_configs(void)
{
    char *dir = unit_mkdtemp();
    char  path[1200], *text, *at, *patched;
    const char *marker = "/etc/hmac-file-server/secret";

    err[0] = '\0';
    CU_ASSERT_EQUAL(conf_load("etc/dev.conf", &c, err, sizeof(err)), 0);
    if (err[0] != '\0')
        printf("    %s\n", err);
    CU_ASSERT_EQUAL(c.workers, 2);
    CU_ASSERT_STRING_EQUAL(c.storage_dir, "./var/storage");
    CU_ASSERT_STRING_EQUAL(c.staging_dir, "./var/staging");
    CU_ASSERT_STRING_EQUAL(c.pidfile, "./var/hmac-file-server.pid");
    CU_ASSERT_EQUAL(c.nsecrets, 1);
    CU_ASSERT(c.secrets[0].len == 20 &&
              memcmp(c.secrets[0].key, "dev-secret-change-me", 20) == 0);

    /* The sample reads its secret from /etc: point that at a scratch file. */
    snprintf(path, sizeof(path), "%s/secret", dir);
    write_file(path, "sample-secret\n");
    text = read_text("etc/hmac-file-server.conf");
    at = strstr(text, "secret_files = [ \"/etc/hmac-file-server/secret\" ]");
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    at = strstr(at, marker);
    patched = malloc(strlen(text) + strlen(path) + 1);
    CU_ASSERT_FATAL(patched != NULL);
    sprintf(patched, "%.*s%s%s", (int)(at - text), text, path,
            at + strlen(marker));
    err[0] = '\0';
    CU_ASSERT_EQUAL(conf_load_string(patched, "etc/hmac-file-server.conf", &c,
                                     err, sizeof(err)), 0);
    if (err[0] != '\0')
        printf("    %s\n", err);
    CU_ASSERT_STRING_EQUAL(c.storage_dir, "/var/lib/hmac-file-server/files");
    CU_ASSERT_STRING_EQUAL(c.staging_dir,
                           "/var/lib/hmac-file-server/staging");
    CU_ASSERT_STRING_EQUAL(c.pidfile, "/run/hmac-file-server.pid");
    CU_ASSERT_STRING_EQUAL(c.user, "hmac-file-server");
    CU_ASSERT(c.nsecrets == 1 && c.secrets[0].len == 13);
    CU_ASSERT_EQUAL(c.max_upload_size, 1ULL << 30);
    CU_ASSERT_TRUE(c.resumable_uploads);
    CU_ASSERT_TRUE(c.chunked_uploads);
    CU_ASSERT_EQUAL(c.max_retries, 3);
    /* Every key of the uploads group is spelled out in the sample. */
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "resumableuploadsenabled = true;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "chunkeduploadsenabled = true;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "maxretries = 3;"));
    free(patched);
    free(text);
    unit_rmtree(dir);
    free(dir);
}

/* Checks made after loading (the master's: run user, writable dirs) point
 * at the key's line, its group's when left at the default, else line 1. */
static void
test_key_error(void)
{
    char *dir = unit_mkdtemp();
    char  path[600], want[800];

    snprintf(path, sizeof(path), "%s/k.conf", dir);
    write_file(path, "# a comment\n"
                     "server: {\n"
                     "    user = \"someone\";\n"
                     "};\n"
                     "security: { secrets = [\"x\"]; };\n");
    CU_ASSERT_EQUAL_FATAL(conf_load(path, &c, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(conf_key_error(&c, "server.user", err, sizeof(err),
                                   "no such user \"%s\"", c.user), -1);
    snprintf(want, sizeof(want), "%s:3: server.user: no such user "
             "\"someone\"", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    conf_key_error(&c, "server.group", err, sizeof(err), "x");
    snprintf(want, sizeof(want), "%s:2: server.group: x", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    conf_key_error(&c, "storage.dir", err, sizeof(err), "y");
    snprintf(want, sizeof(want), "%s:1: storage.dir: y", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    /* A file gone since: still the key and the file. */
    unlink(path);
    conf_key_error(&c, "server.user", err, sizeof(err), "z");
    snprintf(want, sizeof(want), "%s:1: server.user: z", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    unit_rmtree(dir);
    free(dir);
}

/* cluster.node_id: a plain name; a cluster group without one is an error;
 * no group means a single node (node_id ""). */
static void
test_cluster_node_id(void)
{
    CU_ASSERT_EQUAL(load(SEC), 0);
    CU_ASSERT_STRING_EQUAL(c.node_id, "");
    CU_ASSERT_EQUAL(load(SEC "cluster: { node_id = \"files-a.b_1\"; };\n"), 0);
    CU_ASSERT_STRING_EQUAL(c.node_id, "files-a.b_1");
    expect_err(SEC "cluster: { node_id = \"a b\"; };\n",
               "t.conf:2: cluster.node_id: ", "not allowed");
    expect_err(SEC "cluster: { node_id = \"\"; };\n",
               "t.conf:2: cluster.node_id: ", "");
    expect_err(SEC "cluster: { node_id = \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; };\n",
               "t.conf:2: cluster.node_id: ", "");
    expect_err(SEC "cluster: { };\n", "t.conf:2: cluster.node_id: ",
               "needs this node's node_id");
}

static CU_TestInfo tests[] = {
    { "cluster.node_id", test_cluster_node_id },
    { "errors of later checks name FILE:LINE: key", test_key_error },
    { "defaults", test_defaults },
    { "full file round-trips every field", test_full_roundtrip },
    { "unknown group and key", test_unknown },
    { "wrong types", test_wrong_type },
    { "storage.sync", test_sync_mode },
    { "sizes", test_sizes },
    { "size units of the seed", test_size_units },
    { "libconfig int wrap refused", test_int_wrap },
    { "durations and ranges", test_durations },
    { "upload switches and maxretries", test_upload_switches },
    { "listen addresses and ports", test_listen },
    { "list limits", test_too_many },
    { "url_prefix", test_url_prefix },
    { "missing secret", test_missing_secret },
    { "empty and long secrets", test_empty_secret },
    { "secret files", test_secret_files },
    { "TLS listener needs certificate", test_tls_needs_cert },
    { "syntax and I/O errors", test_syntax_error },
    { "include", test_include },
    { "misc values", test_misc_values },
    { "file and directory modes", test_modes },
    { "logging.access_log", test_access_log },
    { "failed load leaves output alone", test_failure_keeps_output },
    { "shipped configs load", test_shipped_configs },
    CU_TEST_INFO_NULL
};

UNIT_SUITE("conf", NULL, NULL, tests);
