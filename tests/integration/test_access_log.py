"""The access log (logging.access_log): one line per request, nginx's
combined format plus `in=`, `t=` and `sid=` (docs/operations.md, "Access
log").

Every line is parsed whole with one strict pattern, so a field a client
could forge, an unescaped quote or a line broken by a newline fails the
test, not only a missing value.  Syslog is tested through a datagram socket
of the test's own ("syslog:/path"), the same code path as /dev/log.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import hfs
from hfs import Daemon, build_request

TUS = ("Tus-Resumable", "1.0.0")
QUOTED = r'"((?:[^"\\\x00-\x1f\x7f-\xff]|\\x[0-9a-f]{2})*)"'
LINE = re.compile(
    r'^(?P<addr>[0-9a-f.:]+) - - '
    r'\[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
    r'(?:"-"|"(?P<method>[A-Z]+) (?P<path>(?:[^"\\ \x00-\x1f\x7f-\xff]'
    r'|\\x[0-9a-f]{2})*) HTTP/1\.[01]") '
    r'(?P<status>\d{3}) (?P<out>\d+) '
    r'%s %s in=(?P<in>\d+) t=(?P<t>\d+\.\d{3}) sid=%s$'
    % (QUOTED.replace("(", "(?P<referer>", 1),
       QUOTED.replace("(", "(?P<agent>", 1),
       QUOTED.replace("(", "(?P<sid>", 1)))


def parse(text):
    """Every line must match LINE; returns their groupdicts."""
    out = []
    for ln in text.splitlines():
        m = LINE.match(ln)
        assert m, "malformed access log line: %r" % ln
        out.append(m.groupdict())
    return out


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("ascii")     # escaped: ASCII only
    except FileNotFoundError:
        return ""


def lines(path, want=None, timeout=5.0):
    """Parsed lines of `path`, without the harness's /health probes; waits
    until at least `want` (the line is written just after the answer)."""
    got = []

    def enough():
        got[:] = [x for x in parse(read(path)) if x["path"] != "/health"]
        return want is None or len(got) >= want
    hfs.wait_for(enough, timeout, "%s access log lines in %s" % (want, path))
    return got


def one(got, method, path):
    """The line of the one request with this method and path.  (Lines of
    different workers reach the file in the order their loop turns end,
    which need not be the order the requests were answered in.)"""
    found = [x for x in got if x["method"] == method and x["path"] == path]
    assert len(found) == 1, (method, path, got)
    return found[0]


def alog_daemon(tmp_name="access.log", **kw):
    """A daemon whose access log is in its own temp dir."""
    d = Daemon(start=False, **kw)
    path = os.path.join(d.tmp, tmp_name)
    d.cfg.setdefault("logging", {}).setdefault("access_log", path)
    with open(d.conf_path, "w") as f:
        f.write(hfs.config_text(d.cfg))
    d.start_or_clean_up()
    return d, d.cfg["logging"]["access_log"]


def test_fields_for_get_put_head_and_errors():
    d, path = alog_daemon()
    with d:
        data = b"x" * 1000
        before = time.time()
        assert d.put("al/a.bin", data,
                     headers=[("User-Agent", "Conversations/2.17")]
                     ).status == 201
        assert d.get("al/a.bin").status == 200
        assert d.head("al/a.bin").status == 200
        assert d.get("al/missing").status == 404
        bad = d.target("al/b.bin", "v=" + "0" * 64)
        assert d.request("PUT", bad, body=b"abc").status == 403
        assert d.request("DELETE", d.target("al/a.bin")).status == 405
        got = lines(path, 6)
        assert sorted((x["method"], x["path"], x["status"]) for x in got) == [
            ("DELETE", "/al/a.bin", "405"), ("GET", "/al/a.bin", "200"),
            ("GET", "/al/missing", "404"), ("HEAD", "/al/a.bin", "200"),
            ("PUT", "/al/a.bin", "201"), ("PUT", "/al/b.bin", "403")], got
        put, get, head = (one(got, "PUT", "/al/a.bin"),
                          one(got, "GET", "/al/a.bin"),
                          one(got, "HEAD", "/al/a.bin"))
        assert put["in"] == "1000" and get["out"] == "1000", got
        assert get["in"] == "0" and head["out"] == "0", got
        assert put["agent"] == "Conversations/2.17", put
        assert get["agent"] == "-" and get["referer"] == "-", get
        assert all(x["addr"] == "127.0.0.1" and x["sid"] == "-"
                   for x in got), got
        stamp = time.strptime(put["time"], "%d/%b/%Y:%H:%M:%S +0000")
        t = time.mktime(stamp) - time.mktime(time.gmtime(0))
        assert before - 2 <= t <= time.time() + 2, (put["time"], before)
        assert all(0 <= float(x["t"]) < 5 for x in got), got


def test_no_query_string_or_signature_in_the_log():
    d, path = alog_daemon()
    with d:
        secrets = []
        for i, v in enumerate((1, 2)):
            p = "sig/%d.bin" % i
            t = d.put_target(p, 3, v=v, content_type="text/plain")
            secrets.append(t.split("=", 1)[1])
            r = d.request("PUT", t, [("Content-Type", "text/plain")],
                          body=b"abc")
            assert r.status == 201, r
        # A GET with a query, a wrong MAC, and a Referer with a token.
        t = d.target("sig/0.bin", "v=" + "ab" * 32)
        r = d.request("GET", t, [("Referer",
                                  "https://web.example/chat?token=s3cr3t")])
        assert r.status == 200, r
        secrets += ["ab" * 32, "s3cr3t"]
        # Targets the upload path never splits: an admin URL, and an
        # absolute-form target refused with 400.
        assert d.request("GET", "/metrics?v=" + "cd" * 32).status == 200
        r = d.request("PUT", "http://x/sig/2.bin?v=" + "ef" * 32, body=b"a")
        assert r.status == 400, r
        secrets += ["cd" * 32, "ef" * 32]
        got = lines(path, 5)
        text = read(path)
        for s in secrets:
            assert s not in text, "%s in the access log:\n%s" % (s, text)
        assert "?" not in text, text
        assert one(got, "GET", "/sig/0.bin")["referer"] == \
            "https://web.example/chat", got


def test_hostile_bytes_are_escaped():
    d, path = alog_daemon()
    with d:
        agent = 'evil" 200 0 "-" "x\\" \t\u00e9 in=1'     # UTF-8 on the wire
        r = d.request("GET", d.target("al/none"), [("User-Agent", agent)])
        assert r.status == 404, r
        # A folded header line would carry CR LF into the value if it were
        # unfolded naively; the daemon refuses it (400) or escapes it.
        raw = (b"GET /al/fold HTTP/1.1\r\nHost: x\r\nUser-Agent: a\r\n"
               b" 127.0.0.1 - - [forged\r\n\r\n")
        hfs.raw_request(d.port, raw)
        # Bytes in the path (quote, backslash, raw UTF-8) stay inside it.
        hfs.raw_request(d.port, b'GET /al/q"\\\xc3\xa9 HTTP/1.1\r\n'
                                b"Host: x\r\n\r\n")
        got = lines(path, 3)          # parse() checks every line's shape
        assert len(got) == 3, got
        assert one(got, "GET", "/al/none")["agent"] == (
            'evil\\x22 200 0 \\x22-\\x22 \\x22x\\x5c\\x22 \\x09\\xc3\\xa9 in=1'), got
        assert not any(ln.startswith("127.0.0.1 - - [forged")
                       for ln in read(path).splitlines()), read(path)


def holding(pids, path):
    """Pids among `pids` with an fd open on `path`."""
    out = []
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == path:
                    out.append(pid)
                    break
            except OSError:
                pass
    return out


def wait_reopened(d, path):
    """Every worker has let go of the renamed file (path + ".1")."""
    hfs.wait_for(lambda: not holding(d.worker_pids(), path + ".1"), 10,
                 "every worker to reopen %s" % path)


def one_conn_per_worker(d):
    """Open connections, one held by each worker (accepting is the
    kernel's choice: keep trying)."""
    workers, held = set(d.worker_pids()), {}
    for _ in range(200):
        c = d.conn()
        owner = d.conn_owner(c)
        if owner in workers and owner not in held:
            held[owner] = c
            if len(held) == len(workers):
                return list(held.values())
        else:
            c.close()
    raise AssertionError("could not reach every worker: %s" % held)


def test_reopened_on_sigusr1_by_workers_and_respawned_workers():
    d, path = alog_daemon(**{"server.workers": 2})
    with d:
        assert d.get("al/before").status == 404
        lines(path, 1)
        os.rename(path, path + ".1")
        os.kill(d.pid, signal.SIGUSR1)
        hfs.wait_for(lambda: "log reopened" in d.log(), 5, "master reopen")
        hfs.wait_for(lambda: os.path.exists(path), 5, "new access log")
        wait_reopened(d, path)
        conns = one_conn_per_worker(d)
        for i, c in enumerate(conns):
            c.send(build_request("GET", "/al/after-%d" % i))
            assert c.read_response("GET").status == 404
            c.close()
        got = lines(path, 2)
        assert sorted(x["path"] for x in got) == ["/al/after-0",
                                                  "/al/after-1"], got
        assert "after" not in read(path + ".1"), read(path + ".1")
        # A worker forked after the rotation writes to the new file too.
        victim = d.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        d.wait_workers(2, exclude=(victim,))
        for i, c in enumerate(one_conn_per_worker(d)):
            c.send(build_request("GET", "/al/respawned-%d" % i))
            assert c.read_response("GET").status == 404
            c.close()
        assert sorted(x["path"] for x in lines(path, 4))[2:] == [
            "/al/respawned-0", "/al/respawned-1"], read(path)
        assert "respawned" not in read(path + ".1")


def test_off_writes_nothing():
    for off in ("off", hfs.DELETE):   # the built-in default is off too
        d = Daemon(**{"logging.access_log": off})
        with d:
            before = set(os.listdir(d.tmp))
            assert d.put("al/a.bin", b"abc").status == 201
            assert d.get("al/a.bin").status == 200
            time.sleep(0.2)
            assert set(os.listdir(d.tmp)) == before, os.listdir(d.tmp)
            assert not re.search(r'"(PUT|GET) /al/', d.log()), d.log()


@hfs.timeout(60)
def test_cut_requests_are_logged():
    d, path = alog_daemon(**{"timeouts.readtimeout": 1})
    with d:
        # A plain PUT cut by the client after 300000 of 1 MiB bytes.
        total = 1 << 20
        c = d.conn()
        c.send(build_request("PUT", d.put_target("cut/a.bin", total),
                             [("Content-Length", str(total))], b""))
        c.send(b"z" * 300000)
        time.sleep(0.2)
        c.close()
        got = lines(path, 1)
        assert (got[0]["method"], got[0]["path"], got[0]["status"],
                got[0]["in"], got[0]["out"]) == (
                    "PUT", "/cut/a.bin", "499", "300000", "0"), got
        # A chunk of the session-header protocol, cut: its session id.
        c = d.conn()
        c.send(build_request("PUT", d.put_target("cut/b.bin", total), [
            ("Content-Length", str(total)), ("X-Upload-Session-ID", "s-42"),
            ("Content-Range", "bytes 0-%d/%d" % (total - 1, total))], b""))
        c.send(b"y" * 1000)
        time.sleep(0.2)
        c.close()
        got = lines(path, 2)
        assert (got[1]["status"], got[1]["sid"], got[1]["in"]) == (
            "499", "s-42", "1000"), got
        # A body that stalls: the server closes it (408, nothing sent).
        c = d.conn()
        c.send(build_request("PUT", d.put_target("cut/c.bin", 10),
                             [("Content-Length", "10")], b"12345"))
        c.wait_closed(timeout=10)
        got = lines(path, 3, timeout=10)
        assert (got[2]["path"], got[2]["status"], got[2]["in"]) == (
            "/cut/c.bin", "408", "5"), got


def test_tus_upload_id_is_shortened():
    d, path = alog_daemon()
    with d:
        data = b"t" * 100
        r = d.request("POST", d.put_target("tus/a.bin", len(data)),
                      [TUS, ("Upload-Length", str(len(data)))])
        assert r.status == 201, r
        loc = r.header("Location")
        upload_id = loc.rsplit("/", 1)[1]
        r = d.request("PATCH", loc, [
            TUS, ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream")],
            body=data)
        assert r.status == 204, r
        got = lines(path, 2)
        text = read(path)
        assert upload_id not in text, text
        assert one(got, "POST", "/tus/a.bin")["sid"] == upload_id[:12], got
        p = one(got, "PATCH", "/.tus/%s..." % upload_id[:12])
        assert p["sid"] == upload_id[:12], p
        assert p["in"] == "100" and p["status"] == "204", p


def test_syslog_socket():
    d = Daemon(start=False)
    sock_path = os.path.join(d.tmp, "log.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock_path)
    s.settimeout(5)
    try:
        d.cfg["logging"]["access_log"] = "syslog:" + sock_path
        with open(d.conf_path, "w") as f:
            f.write(hfs.config_text(d.cfg))
        d.start_or_clean_up()
        with d:
            assert d.get("sys/x").status == 404
            while True:
                msg = s.recv(8192).decode("ascii")
                if "/health" not in msg:
                    break
            m = re.match(r"^<190>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d "
                         r"hmac-file-server\[(\d+)\]: (.*)$", msg)
            assert m, msg
            assert int(m.group(1)) in d.worker_pids(), msg
            x = parse(m.group(2))[0]
            assert (x["method"], x["path"], x["status"]) == (
                "GET", "/sys/x", "404"), x
    finally:
        s.close()


def test_bad_targets_refused():
    d = Daemon(start=False)
    with d:
        for bad, words in (("sylog", "containing '/'"),
                           ("syslog:dev/log", "absolute path")):
            d.cfg["logging"]["access_log"] = bad
            with open(d.conf_path, "w") as f:
                f.write(hfs.config_text(d.cfg))
            r = subprocess.run([hfs.HFS_BIN, "-t", "-c", d.conf_path],
                               capture_output=True, text=True)
            assert r.returncode == 1 and "logging.access_log" in r.stderr \
                and words in r.stderr and "hfs.conf:" in r.stderr, r
        # A file that cannot be opened, or a syslog socket nobody listens
        # on, fails the start, on stderr.
        for bad, words in (("/nonexistent-dir/access.log", "cannot open"),
                           ("syslog:/nonexistent-dir/log.sock",
                            "syslog socket")):
            d.cfg["logging"]["access_log"] = bad
            with open(d.conf_path, "w") as f:
                f.write(hfs.config_text(d.cfg))
            r = subprocess.run([hfs.HFS_BIN, "-f", "-c", d.conf_path],
                               capture_output=True, text=True, timeout=10)
            assert r.returncode == 1, r
            assert "logging.access_log" in r.stderr and words in r.stderr \
                and bad.split(":")[-1] in r.stderr, r


def test_reload_switches_the_file():
    d, path = alog_daemon()
    with d:
        assert d.get("rl/one").status == 404
        lines(path, 1)
        new = os.path.join(d.tmp, "access2.log")
        d.cfg["logging"]["access_log"] = new
        with open(d.conf_path, "w") as f:
            f.write(hfs.config_text(d.cfg))
        old = d.worker_pids()
        os.kill(d.pid, signal.SIGHUP)
        hfs.wait_for(lambda: "generation 2" in d.log(), 10, "reload")
        d.wait_workers(2, exclude=old)      # only the new generation
        assert d.get("rl/two").status == 404
        assert [x["path"] for x in lines(new, 1)] == ["/rl/two"]
        assert "/rl/two" not in read(path)


def test_logrotate_entry_rotates_the_access_log():
    """etc/logrotate.hmac-file-server, pointed at a temp dir holding the
    access log, run with `logrotate -f`: renamed, recreated, reopened."""
    lr = shutil.which("logrotate")
    if lr is None:
        raise hfs.Skip("logrotate is not installed")
    if os.geteuid() != 0:
        raise hfs.Skip("logrotate runs as root")
    logdir = tempfile.mkdtemp(prefix="hfs-al-lr-")
    path = os.path.join(logdir, "access.log")
    pidfile = os.path.join(logdir, "hfs.pid")
    try:
        with open(os.path.join(hfs.REPO, "etc",
                               "logrotate.hmac-file-server")) as f:
            snippet = f.read()
        assert "/var/log/hmac-file-server/*.log" in snippet
        snippet = (snippet
                   .replace("/var/log/hmac-file-server/*.log",
                            os.path.join(logdir, "*.log"))
                   .replace("/run/hmac-file-server.pid", pidfile)
                   .replace("hmac-file-server adm", "root root"))
        conf = os.path.join(logdir, "logrotate.conf")
        with open(conf, "w") as f:
            f.write(snippet)
        with Daemon(**{"logging.access_log": path,
                       "server.pidfile": pidfile}) as d:
            assert d.get("lr/one").status == 404
            lines(path, 1)
            p = subprocess.run([lr, "-f", "-s", os.path.join(logdir, "state"),
                                conf], capture_output=True, timeout=20)
            assert p.returncode == 0, p
            assert "/lr/one" in read(path + ".1"), os.listdir(logdir)
            hfs.wait_for(lambda: "log reopened" in d.log(), 5, "SIGUSR1")
            wait_reopened(d, path)
            assert d.get("lr/two").status == 404
            assert [x["path"] for x in lines(path, 1)] == ["/lr/two"]
            assert "/lr/two" not in read(path + ".1")
    finally:
        shutil.rmtree(logdir, True)
