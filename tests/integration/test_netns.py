"""Network resilience over a real link: the daemon runs inside a network
namespace made here, reached through a veth pair whose daemon end lives in
the namespace and whose client end stays in the root namespace.  An upload
throttled to a slow rate is in flight when the link goes down and comes back;
netmon must see it, the worker must checkpoint the upload and hold responses
until the reconnect window has passed, and the client must finish the upload
byte-identically: here on the same connection, since TCP retransmission
bridges a one-second outage (resuming a session is not implemented yet, so
a dropped connection fails the test).  This is done twice: the daemon's
interface set admin down ("link down"), and its peer set down, which is how
a pulled cable looks from the daemon ("carrier lost").  A third test kills
netmon and checks that the master notices, restarts it, that workers serve
meanwhile, and that the new netmon sees changes.

Every namespace and veth is named after this process (hfs-nt-<pid>-<n>,
hfsc<pid>n<n>, hfsd<pid>n<n>) and removed in a finally; leftovers of a run
whose process is gone are removed by name when the next run starts.  Traffic
only ever goes to the two addresses of our own /30 on our own veth.
"""

import atexit
import contextlib
import ipaddress
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import hfs
from hfs import Conn, Daemon, build_request

MiB = 1 << 20
RECONNECT_DELAY = 2          # network.reconnectdelay, seconds
NETWORK = {
    "network.networkchangedetection": True,
    "network.uploadpauseonchange": True,
    "network.reconnectdelay": RECONNECT_DELAY,
}


# ---------------------------------------------------------------- commands

def _ip(*args, check=True):
    p = subprocess.run(["ip"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=20)
    if check and p.returncode != 0:
        raise AssertionError("ip %s: exit %d: %s" % (
            " ".join(map(str, args)), p.returncode, p.stderr.strip()))
    return p.stdout


def _can_make_namespaces():
    """None if we can, else the reason why not."""
    if os.geteuid() != 0:
        return "needs root for ip netns (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s"
                                 % (timeout, what))
        time.sleep(0.02)


# ---------------------------------------------------------------- namespace

_ns_seq = itertools.count()
_NS_RE = re.compile(r"^hfs-nt-(\d+)-\d+$")
_LINK_RE = re.compile(r"^hfs[cd](\d+)n\d+$")


def _owner_gone(pid):
    return pid != os.getpid() and not os.path.exists("/proc/%d" % pid)


def _reap_leftovers():
    """A crashed earlier run (SIGKILL, power cut) cannot run its finally:
    remove what it left, but only when its process is gone, since another
    run may be using its own namespace right now."""
    for ln in _ip("netns", "list", check=False).splitlines():
        name = ln.split()[0] if ln.split() else ""
        m = _NS_RE.match(name)
        if m and _owner_gone(int(m.group(1))):
            # Its daemon outlived it (nobody ran stop()) and would keep
            # the namespace alive after the del.
            for p in _ip("netns", "pids", name, check=False).split():
                try:
                    os.kill(int(p), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            _ip("netns", "del", name, check=False)
    for ln in _ip("-o", "link", "show", check=False).splitlines():
        fs = ln.split()
        if len(fs) < 2:
            continue
        name = fs[1].rstrip(":").split("@")[0]
        m = _LINK_RE.match(name)
        if m and _owner_gone(int(m.group(1))):
            _ip("link", "del", name, check=False)


def _pick_subnet(seq):
    """A /30 in 10.213.0.0/16 that no address or specific route in the root
    namespace overlaps; varied by pid so that parallel runs differ."""
    taken = []
    for ln in _ip("-o", "-4", "addr", "show", check=False).splitlines():
        m = re.search(r"inet (\S+)", ln)
        if m:
            taken.append(ipaddress.ip_interface(m.group(1)).ip)
    routes = []
    for ln in _ip("-4", "route", "show", "table", "all",
                  check=False).splitlines():
        dst = ln.split()[0] if ln.split() else ""
        if dst[:1].isdigit():
            try:
                net = ipaddress.ip_network(dst, strict=False)
            except ValueError:
                continue
            if net.prefixlen >= 16:
                routes.append(net)
    for k in range(256):
        idx = (os.getpid() * 8 + seq * 131 + k * 7) % 16384
        net = ipaddress.ip_network("10.213.%d.%d/30" % (idx // 64,
                                                         (idx % 64) * 4))
        if any(a in net for a in taken):
            continue
        if any(r.prefixlen >= 30 and r.overlaps(net) for r in routes):
            continue
        return net
    raise AssertionError("no free /30 in 10.213.0.0/16")


class Netns:
    """ip netns NAME with veth DEV inside (daemon side, .1/30) and its peer
    PEER in the root namespace (client side, .2/30)."""

    def __init__(self):
        n = next(_ns_seq)
        pid = os.getpid()
        self.name = "hfs-nt-%d-%d" % (pid, n)
        self.dev = "hfsd%dn%d" % (pid, n)       # IFNAMSIZ: at most 15
        self.peer = "hfsc%dn%d" % (pid, n)
        self.net = None
        self.server_addr = self.client_addr = None

    def __enter__(self):
        _reap_leftovers()
        self.net = _pick_subnet(int(self.name.rsplit("-", 1)[1]))
        hosts = list(self.net.hosts())
        self.server_addr, self.client_addr = str(hosts[0]), str(hosts[1])
        p = subprocess.run(["ip", "netns", "add", self.name],
                           capture_output=True, text=True, timeout=20)
        if p.returncode != 0:       # a container without CAP_SYS_ADMIN
            raise hfs.Skip("ip netns add: " + p.stderr.strip())
        try:
            _ip("link", "add", self.peer, "type", "veth", "peer", "name",
                self.dev, "netns", self.name)
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self.name, "addr", "add",
                "%s/30" % self.server_addr, "dev", self.dev)
            _ip("addr", "add", "%s/30" % self.client_addr, "dev", self.peer)
            _ip("-n", self.name, "link", "set", self.dev, "up")
            _ip("link", "set", self.peer, "up")
            _wait(lambda: "state UP" in _ip("-n", self.name, "link", "show",
                                             self.dev),
                  5, "%s to be up" % self.dev)
        except BaseException:
            self.destroy()
            raise
        _live_ns.add(self)
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False

    def destroy(self):
        # Deleting our end removes both ends at once; netns del alone would
        # leave the peer in the root namespace until the kernel's cleanup
        # work runs, which is asynchronous.
        _ip("link", "del", self.peer, check=False)
        _ip("netns", "del", self.name, check=False)
        _live_ns.discard(self)

    def restore_routes(self):
        """IPv4 keeps addresses across admin-down but drops their routes;
        the kernel re-adds them on up, this is for a kernel that did not."""
        _ip("-n", self.name, "route", "replace", str(self.net), "dev",
            self.dev, "proto", "kernel", "scope", "link", "src",
            self.server_addr, check=False)
        _ip("route", "replace", str(self.net), "dev", self.peer, "proto",
            "kernel", "scope", "link", "src", self.client_addr, check=False)

    def state(self):
        return ("%s\n%s\n%s" % (
            _ip("-n", self.name, "addr", "show", check=False),
            _ip("-n", self.name, "route", "show", check=False),
            _ip("route", "show", "dev", self.peer, check=False)))


_live_ns = set()
_live_daemons = set()


@atexit.register
def _atexit_cleanup():
    for pgid in list(_live_daemons):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    for ns in list(_live_ns):
        ns.destroy()


# ---------------------------------------------------------------- daemon

class NsDaemon(Daemon):
    """hfs.Daemon run through `ip netns exec`, listening on the namespace's
    address and spoken to from the root namespace through the veth.  ip
    execs the daemon in place (no fork), so the pid, process group and
    stop() of the harness all apply unchanged."""

    def __init__(self, ns, **overrides):
        self.ns = ns
        self.host = ns.server_addr
        super().__init__(start=False, **overrides)
        self.cfg["server"]["listen"] = ["%s:%d" % (self.host, self.port)]
        with open(self.conf_path, "w") as f:
            f.write(hfs.config_text(self.cfg))
        self.start_or_clean_up()

    def command(self):
        return ["ip", "netns", "exec", self.ns.name] + super().command()

    def start(self):
        super().start()
        _live_daemons.add(self.pid)
        assert _comm(self.pid) != "ip", "ip netns exec forked the daemon"
        return self

    def stop(self):
        _live_daemons.discard(getattr(self, "pid", None))
        return super().stop()

    def url(self, path, query=None):
        return "http://%s:%d%s" % (self.host, self.port,
                                   self.target(path, query))

    def conn(self, timeout=10.0):
        return Conn(self.port, host=self.host, timeout=timeout)

    def request(self, method, target, headers=(), body=b"", timeout=10.0,
                **kw):
        kw.setdefault("host", self.host)
        with self.conn(timeout) as c:
            c.send(build_request(method, target, headers, body, **kw))
            return c.read_response(method)

    def put_stream(self, target, body, headers=(), **kw):
        return self.request("PUT", target, headers, body,
                            timeout=kw.get("timeout", 30.0))


def _netmon_pids(d):
    return [p for p in d.children() if _comm(p) == "hfs-netmon"]


def _netmon_ready(d, pid, timeout=10.0):
    """netmon logs this once subscribed and through its first dump; before
    that a link event could be missed."""
    _wait(lambda: "netmon[%d]: watching links" % pid in d.log(), timeout,
          "netmon %d to start watching\n%s" % (pid, d.log_tail()))


def _new_netmon(d, exclude, timeout=10.0):
    pid = _wait(lambda: [p for p in _netmon_pids(d) if p not in exclude],
                timeout, "a new netmon (not %s)\n%s"
                % (sorted(exclude), d.log_tail()))[0]
    _netmon_ready(d, pid)
    return pid


# ---------------------------------------------------------------- upload

class PacedPut(threading.Thread):
    """A v1-signed PUT whose body is written at `rate` bytes/s on one
    connection, so that it is still in flight when the link goes away."""

    def __init__(self, d, path, data, rate, piece=1 << 16):
        super().__init__(daemon=True)
        self.d, self.path, self.data = d, path, data
        self.rate, self.piece = rate, piece
        self.sent = 0
        self.response = self.error = self.done_at = None

    def run(self):
        c = None
        try:
            c = self.d.conn(timeout=30)
            head = build_request("PUT", self.d.put_target(
                self.path, len(self.data)), [], host=self.d.host,
                length=False)
            c.send(head[:-2] + b"Content-Length: %d\r\n\r\n"
                   % len(self.data))
            t0 = time.monotonic()
            while self.sent < len(self.data):
                if c.readable(0):
                    break               # answered early: stop sending
                n = min(self.piece, len(self.data) - self.sent)
                c.send(self.data[self.sent:self.sent + n])
                self.sent += n
                lag = t0 + self.sent / self.rate - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
            self.response = c.read_response("PUT")
            self.done_at = time.monotonic()
        except BaseException as e:      # reported by the test thread
            self.error = e
        finally:
            if c is not None:
                c.close()


def _wait_reachable(ns, d, timeout=8.0):
    """Time at which a TCP handshake with the daemon's address works again
    (the kernel answers it: no worker, hence no pause, is involved)."""
    t0 = time.monotonic()
    fixed = False
    while True:
        try:
            socket.create_connection((d.host, d.port), timeout=0.3).close()
            return time.monotonic()
        except OSError as e:
            last = e
        if not fixed and time.monotonic() - t0 > 2.0:
            ns.restore_routes()
            fixed = True
        if time.monotonic() - t0 > timeout:
            raise AssertionError("no connectivity %.0f s after link up (%r)"
                                 "\n%s" % (timeout, last, ns.state()))
        time.sleep(0.05)


def _outage_during_upload(down, up, what, size=8 * MiB, rate=MiB,
                          outage=1.0):
    """Starts a throttled upload, runs `down`, waits `outage` s, runs `up`;
    checks netmon's and the workers' log lines, the held response, the
    metrics and the uploaded bytes.  `what` is a regex for netmon's text
    for the change, %(dev)s standing for the daemon's interface."""
    reason = _can_make_namespaces()
    if reason:
        raise hfs.Skip(reason)
    with Netns() as ns, NsDaemon(ns, **NETWORK) as d:
        what = what % {"dev": re.escape(ns.dev)}
        nm = _new_netmon(d, ())
        data = hfs.det_bytes(size, seed=size + len(what))
        put = PacedPut(d, "u-netns/%s.bin" % ns.peer, data, rate)
        put.start()
        _wait(lambda: put.sent >= size // 4 or put.error or put.response,
              15, "a quarter of the upload to be sent")
        assert put.error is None and put.response is None, (
            "upload ended before the outage: %r %r" % (put.error,
                                                       put.response))
        down(ns)
        t_down = time.monotonic()
        time.sleep(outage)
        # netmon's clock is this one (CLOCK_MONOTONIC) and the link-up
        # event comes after t_up0: the window ends >= t_up0 + delay.
        t_up0 = time.monotonic()
        up(ns)
        t_up = time.monotonic()

        # A request made inside the window is answered only after it.
        t_req = _wait_reachable(ns, d)
        r = d.request("GET", "/health", timeout=20)
        t_resp = time.monotonic()
        assert r.status == 200, r

        put.join(40)
        assert not put.is_alive(), "upload still running 40 s later"
        assert put.error is None, (
            "the upload's connection did not survive a %.1f s outage: %r "
            "(a short outage should be bridged by TCP retransmission; "
            "resuming the session would be the fallback)\n%s"
            % (outage, put.error, d.log_tail()))
        assert put.response.status == 201, put.response
        assert put.sent == size

        log = d.log()
        assert re.search(r"netmon\[%d\]: network change: %s; pausing "
                         r"uploads for %d s" % (nm, what,
                                                RECONNECT_DELAY), log), (
            "netmon did not log %r\n%s" % (what, d.log_tail()))
        paused = [int(n) for n in re.findall(
            r"worker[^:]*: network change \(%s\): checkpointed and paused "
            r"(\d+) upload\(s\) for -?\d+ ms" % what, log)]
        assert paused and sum(paused) == 1, (
            "want one worker to checkpoint and pause the upload, got %r\n%s"
            % (paused, d.log_tail()))
        settled = [int(x) for x in re.findall(
            r"network settled after (\d+) ms: resuming", log)]
        assert settled, "no worker resumed\n" + d.log_tail()
        # The pause runs from the change to reconnectdelay after the last
        # event of the burst (the link coming back, or later); the worker
        # starts it a little after t_down, hence the slack.
        want = (t_up0 - t_down + RECONNECT_DELAY) * 1000 - 300
        assert max(settled) >= want, (
            "paused %r ms, want >= %.0f (link down %.1f s + window %d s)"
            % (settled, want, t_up0 - t_down, RECONNECT_DELAY))
        assert "checkpoint of" not in log, d.log_tail()

        # Held: answered no earlier than reconnectdelay after the link came
        # back.  Only meaningful if the request went out inside the window.
        if t_req - t_up < RECONNECT_DELAY - 0.5:
            held = t_resp - t_up0
            assert held >= RECONNECT_DELAY - 0.05, (
                "GET /health sent %.2f s after link up was answered %.2f s "
                "after it: not held until the window passed"
                % (t_req - t_up0, held))
            assert held < RECONNECT_DELAY + 8, held
        else:
            print("note: connectivity took %.2f s to return, the held-"
                  "response check was not made" % (t_req - t_up))

        print("link down %.2f s, reachable %.2f s after up, GET /health "
              "answered %.2f s after up, workers paused %r ms"
              % (t_up0 - t_down, t_req - t_up0, t_resp - t_up0, settled))
        got = d.get("u-netns/%s.bin" % ns.peer)
        assert got.status == 200, got
        assert len(got.body) == size and \
            hfs.sha256(got.body) == hfs.sha256(data), (
                "downloaded %d bytes, sha256 %s, want %s"
                % (len(got.body), hfs.sha256(got.body), hfs.sha256(data)))

        m = d.metrics()
        for name in ("hfs_network_changes_total", "hfs_checkpoints_total",
                     "hfs_uploads_paused_total"):
            assert m.get(name) >= 1, "%s = %r" % (name, m.get(name))
        assert m.get("hfs_uploads_paused") == 0, m.get("hfs_uploads_paused")


# ---------------------------------------------------------------- tests

@hfs.timeout(60)
def test_link_down_up_mid_upload():
    """Admin down of the daemon's interface: netmon reports "link down"."""
    _outage_during_upload(
        lambda ns: _ip("-n", ns.name, "link", "set", ns.dev, "down"),
        lambda ns: _ip("-n", ns.name, "link", "set", ns.dev, "up"),
        "%(dev)s: link down")


@hfs.timeout(60)
def test_carrier_loss_mid_upload():
    """The peer going down is what a pulled cable looks like: the daemon's
    interface stays admin up and loses carrier."""
    _outage_during_upload(
        lambda ns: _ip("link", "set", ns.peer, "down"),
        lambda ns: _ip("link", "set", ns.peer, "up"),
        # The kernel derives LOWERLAYERDOWN by looking the veth peer up in
        # the device's own namespace; with the peer in another namespace it
        # finds nothing and says DOWN.
        r"%(dev)s: carrier lost \((?:lowerlayerdown|down)\)", size=4 * MiB)


def _serve_check(d, tag):
    r = d.request("GET", "/health", timeout=5)
    assert r.status == 200, r
    body = hfs.det_bytes(3000, seed=len(tag))
    r = d.put("u-nm/%s.txt" % tag, body)
    assert r.status == 201, r
    r = d.get("u-nm/%s.txt" % tag)
    assert r.status == 200 and r.body == body, r


@hfs.timeout(60)
def test_netmon_killed_is_restarted():
    with contextlib.ExitStack() as stack:
        ns = None
        if _can_make_namespaces() is None:
            try:
                ns = stack.enter_context(Netns())
            except hfs.Skip as e:
                print("note: %s; running on loopback" % e)
        if ns:
            d = stack.enter_context(NsDaemon(ns, **NETWORK))
        else:                   # netmon needs no privilege on loopback
            d = stack.enter_context(Daemon(**NETWORK))
        nm = _new_netmon(d, ())
        workers = d.wait_workers(2)
        dead = set()
        # A netmon that dies young is restarted after a growing delay:
        # kill until requests have been served with no netmon at all.
        served_without = False
        for i in range(6):
            os.kill(nm, signal.SIGKILL)
            dead.add(nm)
            _wait(lambda: nm not in d.children(), 5, "netmon reaped")
            before = not _netmon_pids(d)
            _serve_check(d, "k%d" % i)
            if before and not _netmon_pids(d):
                served_without = True
            nm = _new_netmon(d, dead)
            if served_without:
                break
        print("%d netmon kill(s) until requests were served with no "
              "netmon running" % len(dead))
        assert served_without, (
            "netmon always came back before a request finished; cannot "
            "show serving without it\n" + d.log_tail())
        deaths = re.findall(r"netmon killed by signal 9 \([^)]*\); "
                            r"workers keep serving, restarting it", d.log())
        assert len(deaths) == len(dead), (
            "%d kills, master logged %d\n%s"
            % (len(dead), len(deaths), d.log_tail()))
        assert d.wait_workers(2) == workers, (
            "workers changed while netmon was dying: %r -> %r"
            % (workers, d.worker_pids()))
        assert d.master_alive()
        _serve_check(d, "after")
        # The new netmon's start-up dump reports nothing...
        assert "network change" not in d.log(), d.log_tail()
        if ns is None:
            print("note: not root, the restarted netmon was not shown to "
                  "see a link change")
            return
        # ... and it does see changes, into the same shared page.
        _ip("-n", ns.name, "link", "set", ns.dev, "down")
        _wait(lambda: re.search(r"netmon\[%d\]: network change: %s: link "
                                r"down" % (nm, re.escape(ns.dev)), d.log()),
              5, "the restarted netmon to report the link going down\n"
              + d.log_tail())
        _ip("-n", ns.name, "link", "set", ns.dev, "up")
        _wait_reachable(ns, d)
        _wait(lambda: "network settled" in d.log(), 10,
              "the workers to resume\n" + d.log_tail())
        m = d.metrics()
        assert m.get("hfs_network_changes_total") >= 1, m.get(
            "hfs_network_changes_total")
