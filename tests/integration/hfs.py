"""hfs: shared harness for the integration tests (Python 3 standard library).

Every test drives the real daemon ($HFS_BIN) on loopback:

    with hfs.Daemon(**{"server.workers": 2}) as d:
        r = d.put("u1/a.txt", b"hello")          # raw socket, v1-signed
        assert r.status == 201
        assert d.get("u1/a.txt").body == b"hello"

MACs are computed here with Python's hmac module, independently of the C code,
so a bug shared by the signer and the verifier cannot hide.  Nothing in this
file knows the daemon's internals: it reads only what api.md promises (HTTP,
the log file, the process tree).
"""

import atexit
import hashlib
import hmac
import http.server
import itertools
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
HFS_BIN = os.environ.get("HFS_BIN") or os.path.join(
    REPO, "build", "rel", "hmac-file-server")
SECRET = "it-secret-7c1e"
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer",
                     "UndefinedBehaviorSanitizer", "runtime error")


class Skip(Exception):
    """Raised by a test that cannot run here (the runner prints SKIP)."""


class DaemonError(Exception):
    pass


def timeout(seconds):
    """Per-test time limit for the runner (default 120 s)."""
    def deco(fn):
        fn.hfs_timeout = seconds
        return fn
    return deco


# ---------------------------------------------------------------- signing

def _b(s):
    return s if isinstance(s, bytes) else str(s).encode("utf-8")


def sign_v1(path, size, secret=SECRET):
    """v1: HEX(HMAC-SHA256(secret, path + " " + size)); path is decoded,
    relative, no leading slash (str or bytes)."""
    msg = _b(path) + b" " + _b(size)
    return hmac.new(_b(secret), msg, hashlib.sha256).hexdigest()


def sign_v2(path, size, content_type, secret=SECRET):
    """v2: HEX(HMAC-SHA256(secret, path + NUL + size + NUL + type))."""
    msg = _b(path) + b"\0" + _b(size) + b"\0" + _b(content_type)
    return hmac.new(_b(secret), msg, hashlib.sha256).hexdigest()


def quote_path(path):
    """'a b/ü.txt' -> '/a%20b/%C3%BC.txt': every component percent-encoded,
    so '/' inside a component can never appear."""
    if isinstance(path, bytes):
        comps = path.split(b"/")
    else:
        comps = path.split("/")
    return "/" + "/".join(urllib.parse.quote(c, safe="") for c in comps)


# ---------------------------------------------------------------- files

_scratch = None


def wait_for(cond, timeout=10.0, what="condition", interval=0.02):
    """Calls cond() until it returns a true value, and returns that value;
    AssertionError naming `what` (and the last value) after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last %r)" % (what, last))


def scratch_dir():
    global _scratch
    if _scratch is None:
        _scratch = tempfile.mkdtemp(prefix="hfs-it-scratch-")
        atexit.register(shutil.rmtree, _scratch, True)
    return _scratch


def det_bytes(size, seed=1):
    """Deterministic pseudo-random bytes (small sizes; in memory)."""
    return random.Random(seed).randbytes(size)


_file_seq = itertools.count()


def make_file(size, seed=None, dir=None):
    """Writes `size` deterministic random bytes to a new file; returns
    (path, sha256 hex).  Streams in 1 MiB pieces, never holds the file."""
    if seed is None:
        seed = size * 7919 + next(_file_seq)
    d = dir or scratch_dir()
    path = os.path.join(d, "f%d-%d.bin" % (size, next(_file_seq)))
    rnd = random.Random(seed)
    h = hashlib.sha256()
    left = size
    with open(path, "wb") as f:
        while left > 0:
            n = min(left, 1 << 20)
            piece = rnd.randbytes(n)
            h.update(piece)
            f.write(piece)
            left -= n
    return path, h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            piece = f.read(1 << 20)
            if not piece:
                return h.hexdigest()
            h.update(piece)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def tree(root, exclude=()):
    """Set of (relative path, kind) under root; for 'nothing was created'
    checks.  kind: f file, d dir, l symlink, o other."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if any(rel == e or rel.startswith(e + "/") for e in exclude):
                continue
            if os.path.islink(full):
                kind = "l"
            elif os.path.isdir(full):
                kind = "d"
            elif os.path.isfile(full):
                kind = "f"
            else:
                kind = "o"
            out.add((rel, kind))
    return out


def regular_files(root):
    return sorted(p for p, k in tree(root) if k == "f")


# ---------------------------------------------------------------- HTTP

class Response:
    def __init__(self, version, status, reason, headers, body=b"",
                 interim=None, raw_head=b""):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # [(name, value)] in wire order
        self.body = body
        self.interim = interim or []    # 1xx responses seen before this one
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in reversed(self.headers):
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def hdict(self):
        return {k.lower(): v for k, v in self.headers}

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<%d %s %r body[%d]=%r>" % (self.status, self.reason,
                                           self.headers, len(self.body),
                                           self.body[:120])


class Conn:
    """One client TCP connection with a small HTTP/1.1 response reader, for
    what curl cannot express (pipelining, half-sent bodies, exact bytes)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.port = port

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        self.sock.sendall(data)

    def readable(self, wait=0.0):
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], wait)
        return bool(r)

    def _fill(self):
        data = self.sock.recv(1 << 18)
        if not data:
            raise EOFError("connection closed by server (buffered %r)"
                           % self.buf[:200])
        self.buf += data

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 16:
                raise ValueError("no CRLF in %r" % self.buf[:200])
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_head(self):
        """Reads one status line + headers; returns a body-less Response."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 1 << 16:
                raise ValueError("header too long: %r" % self.buf[:200])
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise ValueError("bad status line %r" % lines[0][:200])
        headers = []
        for ln in lines[1:]:
            if b":" not in ln:
                raise ValueError("bad header line %r" % ln)
            k, v = ln.split(b":", 1)
            headers.append((k.decode("latin-1").strip(),
                            v.decode("latin-1").strip()))
        return Response(m.group(1).decode(), int(m.group(2)),
                        (m.group(3) or b"").decode("latin-1"), headers,
                        raw_head=head)

    def read_response(self, method="GET", interim=False):
        """Next final response (1xx collected into .interim unless
        interim=True, which returns the first response of any kind)."""
        seen = []
        while True:
            r = self.read_head()
            if 100 <= r.status < 200:
                if interim:
                    return r
                seen.append(r)
                continue
            break
        r.interim = seen
        if method == "HEAD" or r.status in (204, 304):
            return r
        te = (r.header("Transfer-Encoding") or "").lower()
        cl = r.header("Content-Length")
        if "chunked" in te:
            r.body = self._read_chunked()
        elif cl is not None:
            r.body = self._take(int(cl))
        else:
            r.body = self.read_to_eof()
        return r

    def _read_chunked(self):
        out = b""
        while True:
            size = int(self._line().split(b";")[0].strip(), 16)
            if size == 0:
                while self._line() != b"":
                    pass
                return out
            out += self._take(size)
            if self._take(2) != b"\r\n":
                raise ValueError("chunk not followed by CRLF")

    def read_to_eof(self, timeout=10.0):
        self.sock.settimeout(timeout)
        out, self.buf = self.buf, b""
        while True:
            try:
                data = self.sock.recv(1 << 18)
            except ConnectionResetError:
                return out
            if not data:
                return out
            out += data

    def wait_closed(self, timeout=3.0):
        """True if the server closes (EOF or reset) within timeout with no
        further bytes; raises if it sends unexpected bytes."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            if self.buf:
                raise AssertionError("unexpected bytes: %r" % self.buf[:200])
            data = self.sock.recv(4096)
            if data:
                raise AssertionError("unexpected bytes: %r" % data[:200])
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)


def build_request(method, target, headers=(), body=b"", host="127.0.0.1",
                  length=True, version="HTTP/1.1"):
    """Request bytes.  headers: list of (k, v) or 'K: v' strings; a
    Content-Length is added for a non-empty body unless one (or
    Transfer-Encoding) is given or length=False."""
    hs = []
    for h in headers:
        hs.append(h if isinstance(h, str) else "%s: %s" % h)
    names = {h.split(":", 1)[0].strip().lower() for h in hs}
    if "host" not in names and host is not None:
        hs.insert(0, "Host: " + host)
    if (length and (body or method == "PUT")
            and "content-length" not in names
            and "transfer-encoding" not in names):
        hs.append("Content-Length: %d" % len(body))
    head = "%s %s %s\r\n" % (method, target, version)
    head += "".join(h + "\r\n" for h in hs) + "\r\n"
    return head.encode("utf-8") + body


def chunked(pieces, ext=None):
    """Encodes an iterable of byte strings as a chunked body (terminator
    included).  ext: optional chunk-extension put on every chunk."""
    out = []
    for p in pieces:
        if not p:
            continue
        out.append(b"%x" % len(p))
        if ext:
            out.append(b";" + ext)
        out += [b"\r\n", p, b"\r\n"]
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def raw_request(port, data, method="GET", timeout=10.0):
    """Sends bytes on a fresh connection, returns the first final
    response."""
    with Conn(port, timeout=timeout) as c:
        c.send(data)
        return c.read_response(method)


# ---------------------------------------------------------------- curl

class CurlResult:
    def __init__(self, rc, status, blocks, body, stderr):
        self.rc = rc
        self.status = status
        self.blocks = blocks      # every header block (100 Continue, ...)
        self.body = body
        self.stderr = stderr
        self.headers = blocks[-1].headers if blocks else []

    def header(self, name, default=None):
        return self.blocks[-1].header(name, default) if self.blocks else \
            default

    def __repr__(self):
        return "<curl rc=%d status=%d headers=%r body=%r stderr=%r>" % (
            self.rc, self.status, self.headers, self.body[:200],
            self.stderr[-500:])


def _parse_header_blocks(raw):
    blocks = []
    for part in re.split(rb"\r?\n\r?\n", raw):
        part = part.strip(b"\r\n")
        if not part.startswith(b"HTTP/"):
            continue
        lines = part.split(b"\r\n") if b"\r\n" in part else part.split(b"\n")
        m = re.match(rb"^(HTTP/[\d.]+) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            continue
        hs = []
        for ln in lines[1:]:
            if b":" in ln:
                k, v = ln.split(b":", 1)
                hs.append((k.decode("latin-1").strip(),
                           v.decode("latin-1").strip()))
        blocks.append(Response(m.group(1).decode(), int(m.group(2)),
                               (m.group(3) or b"").decode("latin-1"), hs))
    return blocks


def curl(*args, stdin=None, timeout=120, out=None):
    """Runs the real curl binary.  The body goes to `out` when given (and is
    then not read back), else it is returned in .body."""
    d = tempfile.mkdtemp(prefix="curl-", dir=scratch_dir())
    hfile = os.path.join(d, "h")
    bfile = out or os.path.join(d, "b")
    cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", str(timeout),
           "-D", hfile, "-o", bfile, "-w", "%{http_code}"] + list(args)
    env = {k: v for k, v in os.environ.items()
           if "proxy" not in k.lower()}
    try:
        p = subprocess.run(cmd, stdin=stdin if stdin is not None
                           else subprocess.DEVNULL, capture_output=True,
                           env=env, timeout=timeout + 10)
        raw = open(hfile, "rb").read() if os.path.exists(hfile) else b""
        body = b""
        if out is None and os.path.exists(bfile):
            body = open(bfile, "rb").read()
        try:
            status = int(p.stdout.strip()[-3:] or b"0")
        except ValueError:
            status = 0
        return CurlResult(p.returncode, status, _parse_header_blocks(raw),
                          body, p.stderr.decode("utf-8", "replace"))
    finally:
        shutil.rmtree(d, True)


# ---------------------------------------------------------------- metrics

class Metrics(dict):
    """name -> [(labels dict, value)] from Prometheus text."""

    def get(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels`;
        0 when none."""
        total = 0.0
        for ls, v in dict.get(self, name, []):
            if all(ls.get(k) == str(val) for k, val in labels.items()):
                total += v
        return total


_METRIC_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    m = Metrics()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        mm = _METRIC_RE.match(line)
        if not mm:
            raise ValueError("bad metrics line %r" % line)
        labels = dict(_LABEL_RE.findall(mm.group(2) or ""))
        m.setdefault(mm.group(1), []).append((labels, float(mm.group(3))))
    return m



# ---------------------------------------------------------------- npm

class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class StaticServer:
    """A directory served as any static web server would, on a loopback
    port of its own: another origin than the daemon's, for browser tests."""

    def __init__(self, root):
        handler = lambda *a, **kw: _QuietFiles(*a, directory=root, **kw)
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.srv.shutdown()
        self.srv.server_close()


def node_with(src_dir, node_dir, module):
    """node, after `npm ci` of the package.json and package-lock.json in
    src_dir into node_dir (under build/: a fresh checkout has none; a changed
    lock file reinstalls). module: one it must then find installed. Skips
    when node or npm is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise Skip("node and npm are needed for %s" % module)

    def read(path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    lock = read(os.path.join(src_dir, "package-lock.json"))
    mods = os.path.join(node_dir, "node_modules")
    if (read(os.path.join(node_dir, "package-lock.json")) != lock
            or not os.path.isdir(os.path.join(mods, module))):
        os.makedirs(node_dir, exist_ok=True)
        for f in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(src_dir, f), node_dir)
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"],
                           cwd=node_dir, capture_output=True, timeout=300)
        assert p.returncode == 0, "npm ci failed:\n%s" % (
            p.stderr.decode()[-2000:])
    return node

# ---------------------------------------------------------------- processes

def proc_stat(pid):
    """(state, ppid, pgrp) or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2])


def proc_cmd(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        with open("/proc/%d/comm" % pid) as f:
            return cmd + " " + f.read().strip()
    except OSError:
        return ""


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


_live = {}


@atexit.register
def _kill_leftovers():
    for pgid in list(_live):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- config

DELETE = object()


def _cfg_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if -2**31 <= v < 2**31 else "%dL" % v
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (bytes, str)):
        s = v.decode("utf-8") if isinstance(v, bytes) else v
        s = (s.replace("\\", "\\\\").replace('"', '\\"')
             .replace("\n", "\\n").replace("\t", "\\t"))
        return '"%s"' % s
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_cfg_value(x) for x in v) + "]"
    raise TypeError("config value %r" % (v,))


def config_text(cfg):
    """libconfig text from {group: {key: value}}."""
    out = []
    for group, keys in cfg.items():
        out.append("%s:\n{\n" % group)
        for k, v in keys.items():
            out.append("    %s = %s;\n" % (k, _cfg_value(v)))
        out.append("};\n\n")
    return "".join(out)


def apply_overrides(cfg, overrides):
    for dotted, v in overrides.items():
        if "." not in dotted:
            raise KeyError("config override %r is not group.key" % dotted)
        group, key = dotted.split(".", 1)
        g = cfg.setdefault(group, {})
        if v is DELETE:
            g.pop(key, None)
            if not g:
                cfg.pop(group)
        else:
            g[key] = v
    return cfg


# ---------------------------------------------------------------- daemon

class Daemon:
    """A running hmac-file-server in its own temp dir.

    Daemon(**{"server.workers": 2, "storage.max_upload_size": "10M"})
    Keyword overrides are "group.key" (or group__key) -> value; DELETE
    removes a default.  Options:
      check_exit=False   the test kills the master itself
      start=False        call .start() yourself
      grace              server.shutdown_grace (default 3)
    Layout: tmp/hfs.conf, tmp/daemon.log, tmp/data/storage,
    tmp/data/staging, tmp/files (make_file scratch)."""

    _seq = itertools.count()

    def __init__(self, check_exit=True, start=True, **overrides):
        self.n = next(Daemon._seq)
        self.check_exit = check_exit
        self.tmp = tempfile.mkdtemp(prefix="hfs-it-")
        self.storage = os.path.join(self.tmp, "data", "storage")
        self.staging = os.path.join(self.tmp, "data", "staging")
        self.files = os.path.join(self.tmp, "files")
        for d in (self.storage, self.staging, self.files):
            os.makedirs(d)
        self.port = free_port()
        self.shm_name = "/hfs-test-%d-%d" % (os.getpid(), self.n)
        self.conf_path = os.path.join(self.tmp, "hfs.conf")
        self.log_path = os.path.join(self.tmp, "daemon.log")
        self.proc = None
        self.problems = []
        cfg = {
            "server": {"listen": ["127.0.0.1:%d" % self.port],
                       "workers": 2, "shutdown_grace": 3,
                       "url_prefix": "/"},
            "storage": {"dir": self.storage, "staging": self.staging,
                        "max_upload_size": "1G", "min_free": "1M"},
            "security": {"secrets": [SECRET], "cors_origins": ["*"]},
            "network": {"networkchangedetection": False},
            "uploads": {"shm_name": self.shm_name},
            "logging": {"target": "stderr", "level": "info"},
        }
        ov = {k.replace("__", "."): v for k, v in overrides.items()}
        self.cfg = apply_overrides(cfg, ov)
        self.prefix = self.cfg["server"].get("url_prefix", "/")
        if self.prefix != "/" and not self.prefix.endswith("/"):
            self.prefix += "/"
        self.storage = self.cfg["storage"].get("dir", self.storage)
        self.staging = self.cfg["storage"].get("staging", self.staging)
        with open(self.conf_path, "w") as f:
            f.write(config_text(self.cfg))
        if start:
            self.start_or_clean_up()

    # -- lifecycle

    def command(self):
        """The daemon's argv; a subclass may wrap it (ip netns exec)."""
        return [HFS_BIN, "-f", "-c", self.conf_path]

    def start_or_clean_up(self):
        """start(); if that fails, remove everything before re-raising."""
        try:
            self.start()
        except BaseException:
            self.check_exit = False
            self.stop()
            self.cleanup()
            raise

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(), cwd=self.tmp,
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
            start_new_session=True)
        self.pid = self.proc.pid
        _live[self.pid] = True
        self.wait_ready()
        return self

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonError("daemon exited with %s during start\n%s"
                                  % (self.proc.returncode, self.log_tail()))
            try:
                r = self.request("GET", "/health", timeout=1.0)
                # 503: serving, but reporting its storage (a test's full
                # or missing storage.dir).
                if r.status in (200, 503):
                    return
                last = "GET /health -> %d" % r.status
            except (OSError, EOFError, ValueError) as e:
                last = repr(e)
            time.sleep(0.05)
        raise DaemonError("daemon not ready in %.0f s (%s)\n%s"
                          % (timeout, last, self.log_tail()))

    def __enter__(self):
        return self

    def __exit__(self, etype, exc, tb):
        problems = self.stop()
        if etype is not None:
            print("---- daemon log tail (%s)\n%s" % (self.log_path,
                                                      self.log_tail(60)))
            if problems:
                print("---- also: " + "; ".join(problems))
            self.cleanup()
            return False
        if problems:
            tail = self.log_tail(60)
            self.cleanup()
            raise AssertionError("; ".join(problems) + "\n---- log tail\n"
                                 + tail)
        self.cleanup()
        return False

    def stop(self):
        """SIGTERM, wait, check exit status, stragglers and sanitizers."""
        problems = self.problems
        if self.proc is None:
            return problems
        grace = int(self.cfg["server"].get("shutdown_grace", 3))
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(grace + 10)
            except subprocess.TimeoutExpired:
                problems.append("master did not exit within %d s of SIGTERM"
                                % (grace + 10))
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
            rc = self.proc.returncode
            if self.check_exit and rc != 0:
                problems.append("master exit status %d after SIGTERM "
                                "(want 0)" % rc)
        left = self.group_pids()
        deadline = time.monotonic() + 5
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = self.group_pids()
        if left:
            problems.append("processes outlived the master: %s" % ", ".join(
                "%d(%s)" % (p, proc_cmd(p)) for p in left))
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
        _live.pop(self.pid, None)
        self.logf.close()
        bad = self.sanitizer_lines()
        if bad:
            problems.append("sanitizer report in log:\n  " +
                            "\n  ".join(bad[:20]))
        self.proc = None
        return problems

    def cleanup(self):
        try:
            os.unlink("/dev/shm" + self.shm_name)
        except OSError:
            pass
        if not os.environ.get("HFS_KEEP"):
            shutil.rmtree(self.tmp, True)
        else:
            print("kept %s" % self.tmp)

    # -- log and processes

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def sanitizer_lines(self):
        return [ln for ln in self.log().splitlines()
                if any(m in ln for m in SANITIZER_MARKERS)]

    def group_pids(self):
        out = []
        for p in all_pids():
            st = proc_stat(p)
            if st and st[2] == self.pid and st[0] not in ("Z", "X"):
                out.append(p)
        return out

    def children(self):
        out = []
        for p in all_pids():
            st = proc_stat(p)
            if st and st[1] == self.pid and st[0] not in ("Z", "X"):
                out.append(p)
        return sorted(out)

    def worker_pids(self):
        """Children of the master, minus a netmon process if there is one
        (recognised by its command line / comm)."""
        return [p for p in self.children()
                if "netmon" not in proc_cmd(p).lower()]

    def master_alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_workers(self, count, exclude=(), timeout=10.0):
        """Waits until `count` workers none of which is in `exclude`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ws = self.worker_pids()
            fresh = [p for p in ws if p not in exclude]
            if len(fresh) >= count and len(ws) == len(fresh):
                return fresh
            time.sleep(0.02)
        raise AssertionError("wanted %d new workers (not %s), have %s\n%s" % (
            count, sorted(exclude), self.worker_pids(), self.log_tail()))

    def conn_owner(self, conn, timeout=5.0):
        """Pid of the worker holding the server side of a client Conn."""
        lport = conn.sock.getsockname()[1]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            inode = None
            with open("/proc/net/tcp") as f:
                for ln in f.readlines()[1:]:
                    fs = ln.split()
                    loc, rem = fs[1], fs[2]
                    if (int(loc.split(":")[1], 16) == self.port and
                            int(rem.split(":")[1], 16) == lport):
                        inode = fs[9]
            if inode and inode != "0":
                want = "socket:[%s]" % inode
                for pid in self.worker_pids():
                    fdd = "/proc/%d/fd" % pid
                    try:
                        for fd in os.listdir(fdd):
                            try:
                                if os.readlink(fdd + "/" + fd) == want:
                                    return pid
                            except OSError:
                                pass
                    except OSError:
                        pass
            time.sleep(0.02)
        return None

    # -- URLs

    def target(self, path, query=None):
        t = self.prefix.rstrip("/") + quote_path(path)
        return t + ("?" + query if query else "")

    def url(self, path, query=None):
        return "http://127.0.0.1:%d%s" % (self.port,
                                          self.target(path, query))

    def put_target(self, path, size, v=1, content_type=None, secret=SECRET):
        if v == 1:
            q = "v=" + sign_v1(path, size, secret)
        elif v == 2:
            q = "v2=" + sign_v2(path, size, content_type or "", secret)
        else:
            raise ValueError("v%r" % v)
        return self.target(path, q)

    def put_url(self, path, size, **kw):
        return "http://127.0.0.1:%d%s" % (self.port,
                                          self.put_target(path, size, **kw))

    # -- requests over raw sockets

    def conn(self, timeout=10.0):
        return Conn(self.port, timeout=timeout)

    def request(self, method, target, headers=(), body=b"", timeout=10.0,
                **kw):
        return raw_request(self.port, build_request(method, target, headers,
                                                    body, **kw),
                           method, timeout)

    def get(self, path, headers=(), method="GET"):
        return self.request(method, self.target(path), headers)

    def head(self, path, headers=()):
        return self.get(path, headers, method="HEAD")

    def put(self, path, data, v=1, content_type=None, size=None,
            headers=(), secret=SECRET):
        """Signed PUT of bytes (Content-Length) on a fresh connection,
        stopping early if the server answers before the body is sent."""
        size = len(data) if size is None else size
        hs = list(headers)
        if content_type is not None:
            hs.append(("Content-Type", content_type))
        t = self.put_target(path, size, v=v, content_type=content_type,
                            secret=secret)
        return self.put_stream(t, data, hs)

    def put_stream(self, target, body, headers=(), piece=1 << 16,
                   pause=0.0, timeout=30.0):
        """Sends the head, then the body in pieces; stops sending as soon as
        a response is readable (413/507/403 may come early).  body: bytes
        (Content-Length added unless given) or already-encoded bytes with a
        Transfer-Encoding header supplied by the caller."""
        c = Conn(self.port, timeout=timeout)
        try:
            head = build_request("PUT", target, headers, b"",
                                 length=False)
            names = {(h if isinstance(h, str) else h[0]).split(":")[0]
                     .strip().lower() for h in headers}
            if ("content-length" not in names and
                    "transfer-encoding" not in names):
                head = head[:-2] + b"Content-Length: %d\r\n\r\n" % len(body)
            c.send(head)
            off = 0
            while off < len(body):
                if c.readable(0):
                    break
                try:
                    c.send(body[off:off + piece])
                except (BrokenPipeError, ConnectionResetError):
                    break
                off += piece
                if pause:
                    time.sleep(pause)
            r = c.read_response("PUT")
            r.sent = min(off, len(body))
            return r
        finally:
            c.close()

    def metrics(self):
        r = self.request("GET", "/metrics")
        if r.status != 200:
            raise AssertionError("GET /metrics -> %r" % r)
        return parse_metrics(r.text)

    def make_file(self, size, seed=None):
        return make_file(size, seed, dir=self.files)
