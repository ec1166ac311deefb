"""The master's command line and process life: -t, -V, several listen
addresses (IPv4 and IPv6), dropping root to server.user after binding,
fast stop on SIGQUIT."""
import os
import pwd
import signal
import socket
import subprocess
import time

import hfs


def run(*args):
    return subprocess.run([hfs.HFS_BIN] + list(args), capture_output=True,
                          text=True, timeout=20)


def test_check_config_ok_and_bad():
    d = hfs.scratch_dir()
    good = os.path.join(d, "good.conf")
    with open(good, "w") as f:
        f.write('security: { secrets = ["x"]; };\n')
    r = run("-t", "-c", good)
    assert r.returncode == 0 and "configuration ok" in r.stdout, r
    bad = os.path.join(d, "bad.conf")
    with open(bad, "w") as f:
        f.write('security: { secrets = ["x"]; };\n'
                'timeouts: {\n  readtimout = 30;\n};\n')
    r = run("-t", "-c", bad)
    assert r.returncode == 1, r
    assert bad + ":3:" in r.stderr and "timeouts.readtimout" in r.stderr, r
    r = run("-t", "-c", os.path.join(d, "missing.conf"))
    assert r.returncode == 1 and "missing.conf" in r.stderr, r
    r = run("-t")                       # the embedded configuration
    assert r.returncode == 0 and "(embedded)" in r.stdout, r


def test_version_and_usage():
    r = run("-V")
    assert r.returncode == 0 and r.stdout.startswith("hmac-file-server "), r
    r = run("-x")
    assert r.returncode == 1 and "usage:" in r.stderr, r


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_ipv4_and_ipv6_listeners():
    if not ipv6_loopback():
        raise hfs.Skip("no IPv6 loopback here")
    p6 = hfs.free_port()
    with hfs.Daemon() as d:
        d.cfg["server"]["listen"].append("[::1]:%d" % p6)
        d.stop()
        with open(d.conf_path, "w") as f:
            f.write(hfs.config_text(d.cfg))
        d.start()
        src, digest = hfs.make_file(4096)
        path = "v6/a.bin"
        r = hfs.curl("-T", src, "http://[::1]:%d%s" % (p6, d.put_target(
            path, 4096)))
        assert r.status == 201, r
        out = os.path.join(d.files, "a.out")
        r = hfs.curl(d.url(path), out=out)          # back over IPv4
        assert r.status == 200 and hfs.sha256_file(out) == digest, r
        assert "listening on [::1]:%d" % p6 in d.log()


def test_drops_root_to_server_user():
    if os.geteuid() != 0:
        raise hfs.Skip("needs root to drop privileges")
    nobody = pwd.getpwnam("nobody")
    root = hfs.scratch_dir()
    os.chmod(root, 0o755)
    storage = os.path.join(root, "files")       # made by the daemon
    staging = os.path.join(root, "staging")
    with hfs.Daemon(**{"server.user": "nobody", "server.group": "nogroup",
                       "storage.dir": storage,
                       "storage.staging": staging}) as d:
        for pid in [d.pid] + d.worker_pids():
            uid = os.stat("/proc/%d" % pid).st_uid
            assert uid == nobody.pw_uid, (pid, uid)
        assert os.stat(storage).st_uid == nobody.pw_uid
        assert os.stat(staging).st_uid == nobody.pw_uid
        src, digest = hfs.make_file(70000)
        r = hfs.curl("-T", src, d.put_url("priv/a.bin", 70000))
        assert r.status == 201, (r, d.log_tail())
        st = os.stat(os.path.join(storage, "priv", "a.bin"))
        assert st.st_uid == nobody.pw_uid


def test_sigquit_stops_at_once():
    with hfs.Daemon(**{"server.shutdown_grace": 30}) as d:
        # An upload in progress would hold a graceful stop for 30 s.
        c = d.conn()
        head = ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                % (d.put_target("q/a.bin", 1 << 20), 1 << 20))
        c.send(head.encode() + b"x" * 1000)
        time.sleep(0.3)
        t0 = time.monotonic()
        os.kill(d.pid, signal.SIGQUIT)
        d.proc.wait(timeout=10)
        assert time.monotonic() - t0 < 5, "SIGQUIT took too long"
        assert d.proc.returncode == 0
        c.close()


# ---------------------------------------------------------------- draining

def _refused_within(port, limit):
    """Seconds until a connect() to port is refused, polling every 20 ms;
    None if it is still accepted after `limit` seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except ConnectionRefusedError:
            return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.02)
    return None


def _trickle(d, path, size, sent, port=None):
    """A PUT of `size` bytes of which only `sent` are sent; returns
    (conn, data).  The rest is sent by the caller."""
    data = hfs.det_bytes(size, seed=size + sent)
    c = hfs.Conn(port or d.port, timeout=15)
    head = ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (d.put_target(path, size), size))
    c.send(head.encode() + data[:sent])
    return c, data


def _listen_inodes(port):
    """Inodes of the sockets listening on 127.0.0.1:port."""
    out = set()
    with open("/proc/net/tcp") as f:
        for ln in f.readlines()[1:]:
            fs = ln.split()
            if fs[3] == "0A" and int(fs[1].split(":")[1], 16) == port:
                out.add("socket:[%s]" % fs[9])
    return out


def _holds(pid, links):
    fdd = "/proc/%d/fd" % pid
    for fd in os.listdir(fdd):
        try:
            if os.readlink(os.path.join(fdd, fd)) in links:
                return True
        except OSError:
            pass
    return False


def _drain_refuses_new_connections(sig):
    with hfs.Daemon(check_exit=False,
                    **{"server.shutdown_grace": 10}) as d:
        c, data = _trickle(d, "drain/a.bin", 300000, 1000)
        assert d.conn_owner(c) is not None
        time.sleep(0.2)
        os.kill(d.pid, sig)
        took = _refused_within(d.port, 1.0)
        assert took is not None, \
            "a new connection is still accepted 1 s after %s" % sig.name
        # The upload in progress finishes within the grace period.
        for i in range(1000, len(data), 50000):
            c.send(data[i:i + 50000])
            time.sleep(0.05)
        r = c.read_response("PUT")
        c.close()
        assert r.status == 201, r
        d.proc.wait(15)
        assert d.proc.returncode == 0, d.log_tail()
        got = open(os.path.join(d.storage, "drain", "a.bin"), "rb").read()
        assert got == data


@hfs.timeout(40)
def test_sigterm_refuses_new_connections_while_draining():
    _drain_refuses_new_connections(signal.SIGTERM)


@hfs.timeout(40)
def test_sigint_refuses_new_connections_while_draining():
    _drain_refuses_new_connections(signal.SIGINT)


@hfs.timeout(40)
def test_reload_retired_workers_let_go_of_the_sockets():
    """A reload: the old generation drains an upload but holds no listening
    socket any more, so a port dropped from the config refuses at once,
    while the new generation keeps accepting on the ports that stay."""
    keep = hfs.free_port()
    with hfs.Daemon(**{"server.shutdown_grace": 10}) as d:
        dropped = d.port
        d.cfg["server"]["listen"].append("127.0.0.1:%d" % keep)
        d.stop()
        with open(d.conf_path, "w") as f:
            f.write(hfs.config_text(d.cfg))
        d.start()
        old = d.wait_workers(2)
        c, data = _trickle(d, "drain/r.bin", 300000, 1000)
        owner = d.conn_owner(c)
        assert owner in old
        kept = _listen_inodes(keep)
        assert kept and _holds(owner, kept)
        d.cfg["server"]["listen"] = ["127.0.0.1:%d" % keep]
        with open(d.conf_path, "w") as f:
            f.write(hfs.config_text(d.cfg))
        os.kill(d.pid, signal.SIGHUP)
        took = _refused_within(dropped, 2.0)
        assert took is not None, "dropped port still accepts after reload"
        d.port = keep
        hfs.wait_for(
            lambda: len([p for p in d.worker_pids() if p not in old]) == 2,
            10, "the new generation")
        hfs.wait_for(lambda: not _holds(owner, kept), 2,
                     "the retiring worker to close the kept listener")
        for _ in range(20):     # the new generation serves every connection
            assert d.request("GET", "/health", timeout=2).status == 200
        assert hfs.alive(owner), "the draining worker quit early"
        for i in range(1000, len(data), 50000):
            c.send(data[i:i + 50000])
            time.sleep(0.05)
        r = c.read_response("PUT")
        c.close()
        assert r.status == 201, r
