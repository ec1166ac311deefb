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
