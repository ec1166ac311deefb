"""End-to-end XEP-0363 with real XMPP servers and a real client.

Prosody (mod_http_upload_external, protocols v1 and v2) and ejabberd
(mod_http_upload with external_secret) hand out upload slots signed with the
daemon's secret; go-sendxmpp as alice asks for a slot, PUTs to the daemon and
sends the GET URL to bob; a go-sendxmpp listener as bob receives it, we
download it with curl and compare sha256.  Then we replay the PUT URL the
server really produced (taken from alice's debug stream) with a flipped MAC
digit, another path, another size, another Content-Type, to show it is that
server's signature the daemon verifies.

Everything runs on loopback in temp dirs and is torn down in finally blocks.
What we learned about the tools is written next to the code that needs it.
"""

import hashlib
import hmac
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "xmpp")
sys.path.insert(0, HERE)

import hfs  # noqa: E402

PROSODY_MODDIR = "/usr/lib/prosody/modules/mod_http_upload_external"
SMALL = b"hello from alice over XEP-0363\n"
BIG_SIZE = 5 * 1024 * 1024


# ---------------------------------------------------------------- utilities

free_port = hfs.free_port


def wait_port(port, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("%s exited with %s before listening:\n%s"
                                 % (what, proc.poll(), proc.output()))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("%s did not listen on %d within %ss:\n%s"
                         % (what, port, timeout,
                            proc.output() if proc else ""))


def render(template, dest, **values):
    with open(os.path.join(TEMPLATES, template)) as f:
        text = string.Template(f.read()).substitute(values)
    with open(dest, "w") as f:
        f.write(text)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def make_cert(dirpath):
    """Self-signed cert for "localhost": go-sendxmpp insists on STARTTLS."""
    os.makedirs(dirpath, exist_ok=True)
    key = os.path.join(dirpath, "localhost.key")
    crt = os.path.join(dirpath, "localhost.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", key, "-out", crt],
                   check=True, capture_output=True, timeout=20)
    return key, crt


class Proc:
    """A child in its own process group whose output is drained by threads.

    Bounded buffers matter: a go-sendxmpp listener whose server goes away
    prints "EOF" in a tight loop forever (we saw 100 MB in seconds)."""

    LIMIT = 256 * 1024

    def __init__(self, argv, name, **kw):
        self.name = name
        self.argv = argv
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE,
                                  start_new_session=True, **kw)
        self.pid = self.p.pid
        self.out = bytearray()
        self.err = bytearray()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._drain, args=(s, b),
                                         daemon=True)
                        for s, b in ((self.p.stdout, self.out),
                                     (self.p.stderr, self.err))]
        for t in self.threads:
            t.start()

    def _drain(self, stream, buf):
        for chunk in iter(lambda: stream.read1(65536), b""):
            with self.lock:
                if len(buf) < self.LIMIT:
                    buf += chunk[:self.LIMIT - len(buf)]

    def poll(self):
        return self.p.poll()

    def text(self, which="out"):
        with self.lock:
            buf = self.out if which == "out" else self.err
            return bytes(buf).decode("utf-8", "replace")

    def output(self):
        return "[%s stdout]\n%s\n[%s stderr]\n%s" % (
            self.name, self.text("out")[-4000:],
            self.name, self.text("err")[-4000:])

    def wait(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace=5.0, leader_last=False):
        """TERM the whole group, KILL it if it lingers; never raises.

        leader_last: TERM only the leader's group mates and let the leader
        (a shell waiting for them) exit by itself, so that its exit means
        they are gone too."""
        if self.p.poll() is None and leader_last:
            for pid in hfs.all_pids():
                st = hfs.proc_stat(pid)
                if st and st[2] == self.pid and pid != self.pid:
                    try:
                        os.kill(pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            self.wait(grace)
        if self.p.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(grace) is None:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait(5)
        else:
            # The leader is gone but a straggler may remain in the group.
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for t in self.threads:
            t.join(2)


# ------------------------------------------------------------------- daemon

def start_daemon(secret):
    """The real daemon (hfs.Daemon) holding only `secret`."""
    return hfs.Daemon(**{"security.secrets": [secret],
                         "storage.max_upload_size": "64M"})


def base_url(d):
    return "http://127.0.0.1:%d/" % d.port


def http(d, method, url, body=b"", headers=None):
    """(status, body) for a full URL on the daemon, over a raw socket so
    the target goes out byte for byte as the XMPP server wrote it."""
    u = urllib.parse.urlsplit(url)
    assert u.port == d.port, url
    target = u.path + ("?" + u.query if u.query else "")
    r = d.request(method, target, headers=list((headers or {}).items()),
                  body=body, timeout=20)
    return r.status, r.body


def count(d, method, code):
    return int(d.metrics().get("hfs_requests_total", method=method,
                               status=str(code)))


# ------------------------------------------------------------------ clients

def sendxmpp_base(user, port):
    # -j host:port skips SRV lookups; -n because our cert is self-signed;
    # without --tls go-sendxmpp does STARTTLS and will not authenticate
    # in the clear.  HOME points at a temp dir so no user config leaks in.
    return ["go-sendxmpp", "-u", user + "@localhost", "-p", "pw",
            "-j", "127.0.0.1:%d" % port, "-n", "--timeout", "10"]


def sendxmpp_env(home):
    env = dict(os.environ)
    env["HOME"] = home
    env.pop("XDG_CONFIG_HOME", None)
    return env


class Listener:
    """go-sendxmpp -l as bob; -d so we can see the session come up."""

    def __init__(self, home, port):
        self.proc = Proc(sendxmpp_base("bob", port) + ["-d", "-l"],
                         "bob-listener", env=sendxmpp_env(home))
        # The server echoes bob's initial presence once it is processed;
        # messages to the bare JID are delivered only after that.
        deadline = time.monotonic() + 15
        while "<presence" not in self.proc.text("err"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out = self.proc.output()
                self.proc.stop()
                raise AssertionError("bob never came online:\n" + out)
            time.sleep(0.05)

    def urls(self):
        return re.findall(r"^\S+ alice@localhost: (https?://\S+)\s*$",
                          self.proc.text("out"), re.M)

    def wait_url(self, url, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if url in self.urls():
                return url
            time.sleep(0.05)
        raise AssertionError("bob never got %s; he got %s\n%s"
                             % (url, self.urls(), self.proc.output()))

    def stop(self):
        self.proc.stop()


def send_file(home, port, path):
    """alice uploads PATH to bob; returns the slot (get, put) she was given.

    go-sendxmpp exits 1 with "Http upload failed." if the PUT is not 2xx;
    its -d stream carries the slot IQ, the only place the PUT URL (with the
    server's MAC) is visible."""
    p = subprocess.run(sendxmpp_base("alice", port)
                       + ["-d", "-h", path, "bob@localhost"],
                       env=sendxmpp_env(home), capture_output=True,
                       timeout=30)
    debug = (p.stdout + p.stderr).decode("utf-8", "replace")
    m = re.search(r"<get url='([^']+)'\s*/>\s*<put url='([^']+)'", debug)
    slot = (html_unescape(m.group(1)), html_unescape(m.group(2))) if m \
        else None
    return p.returncode, slot, debug[-3000:]


def html_unescape(s):
    return (s.replace("&apos;", "'").replace("&quot;", '"')
             .replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def curl_get(url, dest):
    p = subprocess.run(["curl", "-sS", "-o", dest, "-w", "%{http_code}",
                        "--max-time", "20", url],
                       capture_output=True, timeout=30)
    return p.stdout.decode().strip(), p.stderr.decode()


def flip_hex(s):
    """Flip the last hex digit of the v= / v2= value in a URL."""
    m = re.search(r"([?&]v2?=)([0-9a-fA-F]+)", s)
    assert m, s
    mac = m.group(2)
    last = "0" if mac[-1] != "0" else "1"
    return s[:m.start(2)] + mac[:-1] + last + s[m.end(2):]


def expected_mac(secret, put_url, size, content_type):
    """The MAC api.md says the daemon checks, over the decoded path.

    Asserting it equals what the XMPP server produced checks our contract
    against the real signers independently of the daemon."""
    u = urllib.parse.urlsplit(put_url)
    rel = urllib.parse.unquote(u.path).lstrip("/").encode()
    if "v2=" in u.query:
        msg = rel + b"\0" + str(size).encode() + b"\0" + \
            content_type.encode()
    else:
        msg = rel + b" " + str(size).encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def given_mac(put_url):
    return re.search(r"[?&]v2?=([0-9a-fA-F]+)", put_url).group(1).lower()


def upload_failure(d, rc, slot, body, content_type):
    """Say exactly which URL the server signed and what the daemon says."""
    try:
        status, resp = http(d, "PUT", slot[1], body,
                            {"Content-Type": content_type})
        answer = "%d %r" % (status, resp[:200])
    except (OSError, EOFError, ValueError) as e:
        answer = repr(e)
    return ("go-sendxmpp exited %d\n  PUT URL from the XMPP server: %s\n"
            "  size %d, Content-Type %r\n  daemon answers a replay with: "
            "%s\n%s" % (rc, slot[1], len(body), content_type, answer,
                         d.log_tail(20)))


# ------------------------------------------------------------------ servers

class Prosody:
    def __init__(self, tmp, daemon_url, secret, protocol):
        self.dir = os.path.join(tmp, "prosody")
        os.makedirs(os.path.join(self.dir, "data"))
        make_cert(os.path.join(self.dir, "certs"))
        self.port = free_port()
        self.cfg = os.path.join(self.dir, "prosody.cfg.lua")
        render("prosody.cfg.lua.in", self.cfg, DIR=self.dir,
               MODDIR=PROSODY_MODDIR, C2S_PORT=self.port,
               BASE_URL=daemon_url, SECRET=secret, PROTOCOL=protocol)
        self.proc = None

    def __enter__(self):
        # internal_plain writes straight into data_path: no running server
        # needed, and prosodyctl as root does not switch users for this.
        for user in ("alice", "bob"):
            p = subprocess.run(["prosodyctl", "--config", self.cfg,
                                "register", user, "localhost", "pw"],
                               capture_output=True, timeout=20)
            assert p.returncode == 0, p
        self.proc = Proc(["prosody", "--config", self.cfg, "-F"], "prosody")
        try:
            wait_port(self.port, self.proc, 15, "prosody")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.proc.stop()

    def log(self):
        try:
            with open(os.path.join(self.dir, "prosody.log"), errors="replace") \
                    as f:
                return f.read()[-4000:]
        except OSError:
            return ""


class Ejabberd:
    """ejabberd 23.01 under a temp config, run as the ejabberd user.

    As root, ejabberdctl re-runs itself through `su ejabberd`, and su puts
    beam.smp in a session of its own, out of reach of our process group.
    Starting ejabberdctl directly as the ejabberd user (Popen user=) keeps
    beam.smp our child; HOME is the temp dir so the Erlang cookie is ours."""

    def __init__(self, tmp, daemon_url, secret):
        self.dir = os.path.join(tmp, "ejabberd")
        for d in ("spool", "logs", "upload"):
            os.makedirs(os.path.join(self.dir, d))
        key, crt = make_cert(os.path.join(self.dir, "certs"))
        with open(os.path.join(self.dir, "server.pem"), "w") as pem:
            for part in (crt, key):
                with open(part) as f:
                    pem.write(f.read())
        self.port = free_port()
        self.node = "hfs%d@localhost" % self.port
        render("ejabberd.yml.in", os.path.join(self.dir, "ejabberd.yml"),
               DIR=self.dir, C2S_PORT=self.port, BASE_URL=daemon_url,
               SECRET=secret)
        render("ejabberdctl.cfg.in", os.path.join(self.dir, "ejabberdctl.cfg"),
               DIR=self.dir, DIST_PORT=free_port())
        open(os.path.join(self.dir, "inetrc"), "w").close()
        cookie = os.path.join(self.dir, ".erlang.cookie")
        with open(cookie, "w") as f:
            f.write(secrets.token_hex(16))
        os.chmod(cookie, 0o400)
        pw = pwd.getpwnam("ejabberd")
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        os.chmod(tmp, 0o755)
        for root, dirs, files in os.walk(self.dir):
            for n in dirs + files:
                os.chown(os.path.join(root, n), self.uid, self.gid)
        os.chown(self.dir, self.uid, self.gid)
        self.proc = None

    def ctl(self, *args, timeout=30):
        return subprocess.run(self._ctl_argv(*args), env=self._env(),
                              user=self.uid, group=self.gid, extra_groups=[],
                              cwd=self.dir, capture_output=True,
                              timeout=timeout)

    def _ctl_argv(self, *args):
        return ["ejabberdctl", "--config-dir", self.dir,
                "--spool", os.path.join(self.dir, "spool"),
                "--logs", os.path.join(self.dir, "logs"),
                "--node", self.node] + list(args)

    def _env(self):
        env = dict(os.environ)
        env.update(HOME=self.dir, USER="ejabberd", LOGNAME="ejabberd")
        return env

    def __enter__(self):
        self.proc = Proc(self._ctl_argv("foreground"), "ejabberd",
                         env=self._env(), user=self.uid, group=self.gid,
                         extra_groups=[], cwd=self.dir)
        try:
            wait_port(self.port, self.proc, 30, "ejabberd")
            for user in ("alice", "bob"):
                p = self.ctl("register", user, "localhost", "pw")
                assert p.returncode == 0, (p, self.proc.output())
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        # beam.smp treats SIGTERM as init:stop() and ejabberdctl waits for
        # it; erl_child_setup and inet_gethost (own sessions) leave with it.
        if self.proc:
            self.proc.stop(grace=10, leader_last=True)


# -------------------------------------------------------------------- flows

TEXT_CT = "text/plain; charset=utf-8"
BIN_CT = "application/octet-stream"
# go-sendxmpp labels a file with Go's http.DetectContentType, both in the
# slot request and on the PUT.  A fixed prefix that matches no signature
# keeps random data from ever sniffing as, say, image/bmp ("BM...").
BIN_PREFIX = b"\x00\x01hfs-blob\x00\x02"


def make_files(tmp, tag):
    """(path, bytes, content type): a small text file and a 5 MiB binary.

    "+" survives go-sendxmpp's filename scrubbing (spaces and non-ASCII
    become "_") and Prosody percent-encodes it as lowercase "%2b": the
    daemon must MAC the decoded name."""
    small = os.path.join(tmp, "notes+%s.txt" % tag)
    big = os.path.join(tmp, "blob-%s.bin" % tag)
    files = [(small, SMALL, TEXT_CT),
             (big, BIN_PREFIX + os.urandom(BIG_SIZE - len(BIN_PREFIX)),
              BIN_CT)]
    for path, body, _ in files:
        with open(path, "wb") as f:
            f.write(body)
    return files


def upload_and_fetch(tmp, d, secret, port, files):
    """alice sends each file to bob; bob's URLs are fetched and compared."""
    home = os.path.join(tmp, "home")
    os.makedirs(home, exist_ok=True)
    bob = Listener(home, port)
    slots = []
    try:
        for path, body, ctype in files:
            rc, slot, debug = send_file(home, port, path)
            assert slot, "no upload slot in alice's stream:\n" + debug
            want = expected_mac(secret, slot[1], len(body), ctype)
            assert given_mac(slot[1]) == want, (
                "the XMPP server does not sign what api.md says",
                slot[1], want)
            assert rc == 0, upload_failure(d, rc, slot, body, ctype)
            slots.append(slot)
        for (path, body, _), (get_url, put_url) in zip(files, slots):
            got = bob.wait_url(get_url)
            assert put_url.startswith(get_url + "?"), (get_url, put_url)
            dest = os.path.join(tmp, "downloaded")
            code, err = curl_get(got, dest)
            assert code == "200", (got, code, err)
            with open(dest, "rb") as f:
                assert sha256(f.read()) == sha256(body), got
    finally:
        bob.stop()
    # A fresh daemon per test, so the counts are absolute.
    assert count(d, "PUT", 201) == len(files), d.metrics()
    return slots


def assert_mac_is_checked(d, put_url, body, content_type, binds_type):
    """Replays of a server-signed PUT URL: only the exact one is honoured."""
    ok = {"Content-Type": content_type}
    status, resp = http(d, "PUT", put_url, body, ok)
    assert status == 200, ("identical retry should be 200", put_url,
                           status, resp)

    bad = flip_hex(put_url)
    status, resp = http(d, "PUT", bad, body, ok)
    assert status == 403, ("flipped MAC digit", bad, status, resp)

    u = urllib.parse.urlsplit(put_url)
    parts = u.path.split("/")
    parts[-2] = parts[-2][:-1] + ("0" if parts[-2][-1] != "0" else "1")
    moved = urllib.parse.urlunsplit(u._replace(path="/".join(parts)))
    status, resp = http(d, "PUT", moved, body, ok)
    assert status == 403, ("MAC replayed on another path", moved, status,
                           resp)
    status, resp = http(d, "GET", moved.split("?")[0])
    assert status == 404, ("refused PUT left a file", moved, status)

    status, resp = http(d, "PUT", put_url, body + b"x", ok)
    assert status == 403, ("body longer than the signed size", status, resp)

    other = "application/x-not-" + content_type.split("/")[0]
    status, resp = http(d, "PUT", put_url, body, {"Content-Type": other})
    if binds_type:
        assert status == 403, ("v2 signs the Content-Type", status, resp)
    else:
        assert status == 200, ("v1 does not sign the Content-Type", status,
                               resp)
    assert count(d, "PUT", 403) == 3 + binds_type, d.metrics()


# -------------------------------------------------------------------- tests

def _run(case):
    tmp = tempfile.mkdtemp(prefix="hfs-xmpp-")
    try:
        case(tmp, secrets.token_hex(20))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _prosody_case(protocol):
    def case(tmp, secret):
        with start_daemon(secret) as d, \
                Prosody(tmp, base_url(d), secret, protocol) as pr:
            files = make_files(tmp, protocol)
            try:
                slots = upload_and_fetch(tmp, d, secret, pr.port, files)
            except AssertionError as e:
                raise AssertionError("%s\n[prosody.log]\n%s"
                                     % (e, pr.log())) from None
            assert "%2b" in slots[0][0].lower(), slots[0][0]
            _, body, ctype = files[0]
            assert_mac_is_checked(d, slots[0][1], body, ctype,
                                  binds_type=(protocol == "v2"))
    _run(case)


@hfs.timeout(60)
def test_prosody_v1_upload_download():
    _prosody_case("v1")


@hfs.timeout(60)
def test_prosody_v2_upload_download():
    _prosody_case("v2")


@hfs.timeout(60)
def test_prosody_with_wrong_secret_is_refused():
    """Negative control: a slot signed with another secret must not upload."""
    def case(tmp, secret):
        with start_daemon(secret) as d, \
                Prosody(tmp, base_url(d), "not-" + secret, "v1") as pr:
            home = os.path.join(tmp, "home")
            os.makedirs(home)
            path = os.path.join(tmp, "refused.txt")
            with open(path, "wb") as f:
                f.write(SMALL)
            rc, slot, debug = send_file(home, pr.port, path)
            assert slot, "no upload slot in alice's stream:\n" + debug
            assert rc != 0, ("upload with a foreign secret succeeded", slot)
            assert count(d, "PUT", 403) >= 1, d.metrics()
            assert count(d, "PUT", 201) == 0, d.metrics()
            status, _ = http(d, "GET", slot[0])
            assert status == 404, ("refused upload is visible", status)
    _run(case)


@hfs.timeout(90)
def test_ejabberd_upload_download():
    if shutil.which("ejabberdctl") is None:
        raise hfs.Skip("ejabberd is not installed (add it to .ci/deps.sh)")

    def case(tmp, secret):
        # put_url without the trailing slash: ejabberd joins with "/".
        with start_daemon(secret) as d, \
                Ejabberd(tmp, base_url(d).rstrip("/"), secret) as ej:
            files = make_files(tmp, "ejabberd")
            slots = upload_and_fetch(tmp, d, secret, ej.port, files)
            # <sha1(bare jid)>/<random>/<file>: three components deep.
            rel = urllib.parse.urlsplit(slots[0][0]).path.lstrip("/")
            assert rel.count("/") == 2, slots[0][0]
            assert rel.split("/")[0] == hashlib.sha1(
                b"alice@localhost").hexdigest(), slots[0][0]
            _, body, ctype = files[0]
            assert_mac_is_checked(d, slots[0][1], body, ctype,
                                  binds_type=False)
    _run(case)
