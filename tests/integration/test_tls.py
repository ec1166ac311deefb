"""TLS listeners: uploads and downloads over HTTPS with the real curl,
the protocol floor, ALPN, and certificates re-read on SIGHUP (a renewed one
takes effect, a broken one is refused and the old one kept)."""
import os
import signal
import socket
import ssl
import subprocess
import time

import hfs


def make_cert(dirname, name, cn):
    key = os.path.join(dirname, name + ".key")
    crt = os.path.join(dirname, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=" + cn], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return crt, key


class TLSDaemon(hfs.Daemon):
    """A daemon with a plain listener (for the harness) and a TLS one."""

    def __init__(self, **kw):
        self.certdir = hfs.scratch_dir()
        self.crt, self.key = make_cert(self.certdir, "live", "first.test")
        self.tls_port = hfs.free_port()
        super().__init__(**kw)

    def write_config(self, crt, key):
        self.cfg["server"]["listen"] = ["127.0.0.1:%d" % self.port,
                                        "tls:127.0.0.1:%d" % self.tls_port]
        self.cfg["tls"] = {"certificate": crt, "key": key}
        with open(self.conf_path, "w") as f:
            f.write(hfs.config_text(self.cfg))

    def start(self):
        self.write_config(self.crt, self.key)
        return super().start()

    def https(self, path, query=None):
        return "https://127.0.0.1:%d%s" % (self.tls_port,
                                           self.target(path, query))


def peer_cn(port, **ctx_kw):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for k, v in ctx_kw.items():
        setattr(ctx, k, v)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s) as t:
            der = t.getpeercert(binary_form=True)
            proto = t.selected_alpn_protocol()
            version = t.version()
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-subject"],
                         input=pem.encode(), capture_output=True, check=True)
    return out.stdout.decode().strip(), proto, version


def test_https_round_trip():
    with TLSDaemon() as d:
        for size in (0, 1, 3 * 1024 * 1024 + 7):
            src, digest = hfs.make_file(size)
            path = "tls-%d/f.bin" % size
            r = hfs.curl("-k", "-T", src, d.https(path, "v=" +
                                                  hfs.sign_v1(path, size)))
            assert r.status == 201, r
            out = os.path.join(d.files, "got-%d" % size)
            open(out, "wb").close()     # curl writes no file for 0 bytes
            r = hfs.curl("-k", d.https(path), out=out)
            assert r.status == 200, r
            assert hfs.sha256_file(out) == digest
        # A range over TLS, through the buffered (non-sendfile) path.
        r = hfs.curl("-k", "-r", "100-199", d.https("tls-3145735/f.bin"))
        assert r.status == 206 and len(r.body) == 100, r


def test_keepalive_and_alpn():
    with TLSDaemon() as d:
        subject, proto, version = peer_cn(d.tls_port)
        assert "first.test" in subject, subject
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", d.tls_port)) as s:
            with ctx.wrap_socket(s) as t:
                assert t.selected_alpn_protocol() == "http/1.1"
                req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 3
                t.sendall(req)
                data = b""
                deadline = time.monotonic() + 5
                while data.count(b"HTTP/1.1 200") < 3 and \
                        time.monotonic() < deadline:
                    data += t.recv(65536)
                assert data.count(b"HTTP/1.1 200") == 3, data


def test_tls_floor_is_1_2():
    with TLSDaemon() as d:
        r = subprocess.run(["curl", "-sk", "--tlsv1.1", "--tls-max", "1.1",
                            "-o", "/dev/null", "-w", "%{http_code}",
                            "https://127.0.0.1:%d/health" % d.tls_port],
                           capture_output=True, text=True)
        assert r.returncode != 0 and r.stdout in ("000", ""), r
        r = hfs.curl("-k", "--tlsv1.2", "--tls-max", "1.2",
                     "https://127.0.0.1:%d/health" % d.tls_port)
        assert r.status == 200, r


def test_certificate_reloaded_on_hup():
    with TLSDaemon() as d:
        assert "first.test" in peer_cn(d.tls_port)[0]
        # A renewed certificate written over the same files takes effect.
        crt, key = make_cert(d.certdir, "renewed", "second.test")
        os.replace(crt, d.crt)
        os.replace(key, d.key)
        gen = d.metrics().get("hfs_config_generation")
        os.kill(d.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "second.test" in peer_cn(d.tls_port)[0]:
                break
            time.sleep(0.1)
        assert "second.test" in peer_cn(d.tls_port)[0]
        assert d.metrics().get("hfs_config_generation") == gen + 1
        # A broken one is refused: the reload fails, the old one stays.
        with open(d.crt, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
        os.kill(d.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                d.metrics().get("hfs_last_reload_success") != 0:
            time.sleep(0.1)
        assert d.metrics().get("hfs_last_reload_success") == 0
        assert "tls.certificate" in d.log(), d.log_tail()
        assert "second.test" in peer_cn(d.tls_port)[0]
        r = hfs.curl("-k", "https://127.0.0.1:%d/health" % d.tls_port)
        assert r.status == 200, r
