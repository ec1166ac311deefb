"""cluster: N daemons on one GlusterFS volume behind HAProxy, on loopback.

    with cluster.Cluster(nodes=3) as c:
        r = c.put("u/a.bin", data)           # through HAProxy
        c.nodes[0].get("u/a.bin")            # hfs.Daemon API, direct
        c.kill9(c.nodes[1]); c.restart(c.nodes[1])

    with cluster.Gluster(mounts=2) as g:     # just the volume and mounts
        g.mounts[0], g.mounts[1]

What runs (docs/cluster.md, "Deployment", the same steps by hand):
  * glusterd in the foreground with its own glusterd.vol: working directory
    under the test's temp dir, bound to 127.0.0.1;
  * a replica-2 volume with both bricks under the temp dir (the brick host is
    the machine's hostname: glusterd refuses 127.0.0.1 even with force),
    performance translators that cache off;
  * one FUSE mount per node with the glusterfs binary and no kernel caching
    (mount.glusterfs mangles --fopen-keep-cache=false);
  * HAProxy started from etc/haproxy.cfg.example, only its machine lines
    rewritten;
  * the daemons (hfs.Daemon), each with its own port, shm name and node id,
    storage.dir and storage.staging on its own mount of the one volume.

glusterd is one per machine (the gluster CLI talks only to the socket under
/var/run, the brick ports are glusterd's), so a run holds LOCK_PATH, and the
bench takes the same lock. Teardown undoes everything, even after a failed
start: unmount, stop the volume, stop glusterd and whatever it spawned for
our volume, remove what it left under /var/run and /var/log (our names
only) and the temp dir -- never a path this module did not create.
"""

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import hfs

LOCK_PATH = "/tmp/hfs-gluster-cluster.lock"
HAPROXY_EXAMPLE = os.path.join(hfs.REPO, "etc", "haproxy.cfg.example")
GLUSTER_RUN = "/var/run/gluster"
GLUSTER_LOG = "/var/log/glusterfs"
TOOLS = ("glusterd", "gluster", "glusterfs", "haproxy")

# Translators that cache on the client: with them a second mount saw an
# overwrite stale for 18 s (docs/cluster.md).
CACHING_OFF = ("performance.quick-read", "performance.stat-prefetch",
               "performance.open-behind", "performance.write-behind",
               "performance.io-cache", "performance.read-ahead")
# The kernel must not cache attributes, names or pages either.
MOUNT_FLAGS = ("--attribute-timeout=0", "--entry-timeout=0",
               "--negative-timeout=0", "--fopen-keep-cache=false")


class ClusterError(Exception):
    pass


def which(tool):
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        p = os.path.join(d, tool)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(tool)


def require():
    """hfs.Skip unless this machine can run a Gluster cluster: root (FUSE
    mounts, glusterd's ports and /var/run), /dev/fuse and the tools that
    .ci/deps.sh installs."""
    if os.geteuid() != 0:
        raise hfs.Skip("GlusterFS mounts need root")
    if not os.path.exists("/dev/fuse"):
        raise hfs.Skip("no /dev/fuse")
    missing = [t for t in TOOLS if which(t) is None]
    if missing:
        raise hfs.Skip("missing %s (make deps installs them)"
                       % ", ".join(missing))


_knows_cluster = None


def daemon_knows_cluster():
    """Does the daemon accept a cluster group (cluster.node_id)? Asked of
    the binary itself (-t on a config that has one)."""
    global _knows_cluster
    if _knows_cluster is None:
        d = tempfile.mkdtemp(prefix="hfs-cluster-t-")
        try:
            cfg = os.path.join(d, "t.conf")
            with open(cfg, "w") as f:
                f.write(hfs.config_text({
                    "storage": {"dir": d, "staging": d},
                    "security": {"secrets": [hfs.SECRET]},
                    "cluster": {"node_id": "probe"}}))
            p = _run([hfs.HFS_BIN, "-t", "-c", cfg], 30, check=False)
            _knows_cluster = "unknown group" not in p.stdout + p.stderr
        finally:
            shutil.rmtree(d, True)
    return _knows_cluster


def _run(argv, timeout=60, check=True):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise ClusterError("%s -> %d\n%s%s" % (" ".join(argv), p.returncode,
                                               p.stdout, p.stderr))
    return p


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode("utf-8", "replace")
                    for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _kill_wait(pid, sig=signal.SIGTERM, timeout=10.0):
    """Signals pid and waits until it is gone (or a zombie); SIGKILL after
    timeout. True if it had to be killed."""
    try:
        os.kill(pid, sig)
    except OSError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not hfs.alive(pid):
            return False
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    hfs.wait_for(lambda: not hfs.alive(pid), 5, "pid %d to die" % pid)
    return True


def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(ln.split()[1] == path for ln in f)


def mounts_under(root):
    root = os.path.realpath(root) + "/"
    with open("/proc/self/mounts") as f:
        return [ln.split()[1] for ln in f if ln.split()[1].startswith(root)]


class MachineLock:
    """The one-cluster-per-machine lock (flock on LOCK_PATH), waited for."""

    def __init__(self, timeout=300.0):
        self.timeout = timeout
        self.fd = None

    def __enter__(self):
        self.fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                          0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise ClusterError("another cluster run holds %s for "
                                       "over %.0f s" % (LOCK_PATH,
                                                        self.timeout))
                time.sleep(0.2)

    def __exit__(self, *exc):
        os.close(self.fd)   # releases the flock
        return False


class Gluster:
    """glusterd, one replica-2 volume, `mounts` FUSE mounts, all under one
    temp dir. Use as a context manager, or start()/stop()."""

    _seq = 0

    def __init__(self, mounts=2, root=None):
        Gluster._seq += 1
        self.own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="hfs-gluster-")
        self.vol = "hfs%d_%d" % (os.getpid(), Gluster._seq)
        self.host = socket.gethostname()
        self.workdir = os.path.join(self.root, "glusterd")
        self.logdir = os.path.join(self.root, "glusterlog")
        self.bricks = [os.path.join(self.root, "brick%d" % i)
                       for i in (1, 2)]
        self.mounts = [os.path.join(self.root, "mnt%d" % (i + 1))
                       for i in range(mounts)]
        self.glusterd = None
        self.volume_started = False
        self.spawned = {}       # pid -> argv of what glusterd started for us
        self.problems = []

    # -- lifecycle

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        problems = self.stop()
        if problems and exc[0] is None:
            raise AssertionError("gluster teardown: " + "; ".join(problems))
        return False

    def start(self):
        require()
        for d in [self.workdir, self.logdir] + self.bricks + self.mounts:
            os.makedirs(d, exist_ok=True)
        self._check_no_foreign_glusterd()
        self._start_glusterd()
        self._create_volume()
        for m in self.mounts:
            self.mount(m)
        return self

    def _check_no_foreign_glusterd(self):
        for pid in hfs.all_pids():
            argv = _cmdline(pid)
            if argv and os.path.basename(argv[0]) == "glusterd":
                raise ClusterError(
                    "a glusterd this test did not start runs (pid %d: %s); "
                    "the gluster CLI would talk to it" % (pid, " ".join(argv)))

    def _start_glusterd(self):
        vol = os.path.join(self.root, "glusterd.vol")
        with open(vol, "w") as f:
            f.write("volume management\n"
                    "    type mgmt/glusterd\n"
                    "    option working-directory %s\n"
                    "    option transport-type socket\n"
                    "    option transport.socket.bind-address 127.0.0.1\n"
                    "    option transport.socket.listen-port 24007\n"
                    "    option ping-timeout 0\n"
                    "    option event-threads 1\n"
                    "    option max-port 60999\n"
                    "end-volume\n" % self.workdir)
        self.glusterd_log = open(os.path.join(self.logdir, "glusterd.out"),
                                 "ab")
        self.glusterd = subprocess.Popen(
            [which("glusterd"), "-N", "-f", vol,
             "-l", os.path.join(self.logdir, "glusterd.log")],
            stdin=subprocess.DEVNULL, stdout=self.glusterd_log,
            stderr=self.glusterd_log, start_new_session=True)

        def answers():
            if self.glusterd.poll() is not None:
                raise ClusterError("glusterd exited with %d\n%s" % (
                    self.glusterd.returncode, self.log_tail("glusterd.log")))
            # It answers once its start-up is done: ~3 s on an idle
            # machine, but it runs gsyncd (Python) a dozen times for
            # geo-replication first, which takes 10+ s on a loaded one.
            try:
                return _run([which("gluster"), "pool", "list"], 60,
                            check=False).returncode == 0
            except subprocess.TimeoutExpired:
                return False
        hfs.wait_for(answers, 90, "glusterd to answer `gluster pool list`",
                     interval=0.2)

    def gluster(self, *args, timeout=60, check=True):
        return _run([which("gluster"), "--mode=script"] + list(args),
                    timeout, check)

    def _create_volume(self):
        bricks = ["%s:%s" % (self.host, b) for b in self.bricks]
        self.gluster("volume", "create", self.vol, "replica", "2",
                     *bricks, "force")
        for opt in CACHING_OFF:
            self.gluster("volume", "set", self.vol, opt, "off")
        self.gluster("volume", "start", self.vol)
        self.volume_started = True
        self._note_spawned()

    def _ours(self, argv):
        """Is argv a process glusterd started for our volume (a brick, the
        self-heal daemon) or one of our mounts?"""
        if not argv or "gluster" not in os.path.basename(argv[0]):
            return False
        for i, a in enumerate(argv):
            v = a.split("=", 1)[1] if a.startswith("--volfile-id=") else (
                argv[i + 1] if a == "--volfile-id" and i + 1 < len(argv)
                else None)
            if v in (self.vol, "shd/" + self.vol) or (
                    v and v.startswith(self.vol + ".")):
                return True
        return False

    def _note_spawned(self):
        for pid in hfs.all_pids():
            argv = _cmdline(pid)
            if self._ours(argv):
                self.spawned[pid] = argv

    def mount(self, mnt):
        pidfile = mnt + ".pid"
        _run([which("glusterfs"), "--process-name", "fuse",
              "--volfile-server=" + self.host, "--volfile-id=" + self.vol]
             + list(MOUNT_FLAGS) +
             ["-l", os.path.join(self.logdir, os.path.basename(mnt) + ".log"),
              "-p", pidfile, mnt], 30)
        hfs.wait_for(lambda: mounted(mnt) and os.path.isdir(mnt), 15,
                     "the mount at %s" % mnt)
        self._note_spawned()

    def mount_pid(self, mnt):
        try:
            with open(mnt + ".pid") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def umount(self, mnt):
        pid = self.mount_pid(mnt)
        if mounted(mnt):
            if _run(["umount", mnt], 30, check=False).returncode != 0:
                self.problems.append("%s busy: lazily unmounted" % mnt)
                _run(["umount", "-l", mnt], 30, check=False)
        if pid and hfs.alive(pid) and _kill_wait(pid, signal.SIGTERM, 5):
            self.problems.append("mount process %d had to be killed" % pid)

    def stop(self):
        """Everything down and removed; returns the problems met (teardown
        goes on past each)."""
        for m in self.mounts:
            try:
                self.umount(m)
            except Exception as e:
                self.problems.append("umount %s: %r" % (m, e))
        if self.glusterd is not None and self.glusterd.poll() is None:
            if self.volume_started:
                try:
                    self.gluster("volume", "stop", self.vol, "force",
                                 timeout=30)
                except Exception as e:
                    self.problems.append("volume stop: %r" % e)
            self._note_spawned()
            if _kill_wait(self.glusterd.pid, signal.SIGTERM, 10):
                self.problems.append("glusterd had to be killed")
            self.glusterd.wait()
        if self.glusterd is not None:
            self.glusterd_log.close()
            self.glusterd = None
        self._kill_spawned()
        self._remove_traces()
        return self.problems

    def _kill_spawned(self):
        self._note_spawned()
        for pid, argv in self.spawned.items():
            if hfs.alive(pid) and _cmdline(pid) == argv:
                _kill_wait(pid, signal.SIGKILL, 5)

    def _remove_traces(self):
        """What glusterd wrote outside our temp dir, for our volume only."""
        paths = [os.path.join(GLUSTER_RUN, "vols", self.vol),
                 os.path.join(GLUSTER_RUN, "shd", self.vol)]
        for argv in self.spawned.values():
            for i, a in enumerate(argv[:-1]):
                if a == "-S" and argv[i + 1].startswith(GLUSTER_RUN + "/"):
                    paths.append(argv[i + 1])
        for b in self.bricks:
            paths.append(os.path.join(GLUSTER_LOG, "bricks",
                                      b.strip("/").replace("/", "-") + ".log"))
        for p in paths:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, True)
            else:
                try:
                    os.unlink(p)
                except OSError:
                    pass
        if self.own_root:
            left = mounts_under(self.root)
            if left:
                self.problems.append("still mounted, %s kept: %s"
                                     % (self.root, left))
            elif os.environ.get("HFS_KEEP"):
                print("kept %s" % self.root)
            else:
                shutil.rmtree(self.root, True)

    def log_tail(self, name, n=30):
        try:
            with open(os.path.join(self.logdir, name), "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no %s)" % name


class Node(hfs.Daemon):
    """One daemon of the cluster: its config, log and shm are its own,
    its storage.dir and storage.staging are on its mount of the volume."""

    def __init__(self, name, mount, **overrides):
        ov = {"storage.dir": os.path.join(mount, "storage"),
              "storage.staging": os.path.join(mount, "staging"),
              # netmon runs too: kill9 must take every process of a node.
              "network.networkchangedetection": True}
        if daemon_knows_cluster():
            ov["cluster.node_id"] = name
        ov.update({k.replace("__", "."): v for k, v in overrides.items()})
        super().__init__(start=False, **ov)
        self.name = name
        self.mount = mount

    def kill9(self):
        """SIGKILL to the node's whole process group at once (master,
        workers, netmon): no process of it gets to clean up."""
        os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        hfs.wait_for(lambda: not self.group_pids(), 10,
                     "%s's processes to die" % self.name)
        hfs._live.pop(self.pid, None)
        self.logf.close()

    def restart(self):
        self.start()
        return self


class HAProxy:
    """haproxy in the foreground, from etc/haproxy.cfg.example with only
    the machine lines rewritten (bind, server, stats socket, global
    process options)."""

    def __init__(self, root, nodes, example=HAPROXY_EXAMPLE):
        self.root = root
        self.port = hfs.free_port()
        self.sock = os.path.join(root, "haproxy.sock")
        self.cfg_path = os.path.join(root, "haproxy.cfg")
        self.log_path = os.path.join(root, "haproxy.log")
        self.nodes = nodes
        with open(example) as f:
            text = f.read()
        with open(self.cfg_path, "w") as f:
            f.write(self.rewrite(text))
        self.proc = None

    def rewrite(self, text):
        out, servers_done = [], False
        for ln in text.splitlines():
            s = ln.strip()
            word = s.split()[0] if s and not s.startswith("#") else ""
            if word in ("log", "chroot", "user", "group", "daemon") and \
                    ln.startswith("    ") and s != "log global":
                continue
            if s.startswith("stats socket"):
                ln = "    stats socket %s mode 600 level admin" % self.sock
            elif word == "bind":
                ln = "    bind 127.0.0.1:%d" % self.port
            elif word == "server":
                if servers_done:
                    continue
                opts = s.split()[3:]
                ln = "\n".join("    server %s 127.0.0.1:%d %s" % (
                    n.name, n.port, " ".join(opts)) for n in self.nodes)
                servers_done = True
            out.append(ln)
        if not servers_done:
            raise ClusterError("%s has no server line" % HAPROXY_EXAMPLE)
        return "\n".join(out) + "\n"

    def start(self):
        _run([which("haproxy"), "-c", "-q", "-f", self.cfg_path], 30)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [which("haproxy"), "-db", "-f", self.cfg_path],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
            start_new_session=True)
        hfs.wait_for(lambda: self.status() and all(
            v == "UP" for v in self.status().values()), 20,
            "HAProxy to see every node UP")
        return self

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                _kill_wait(self.proc.pid, signal.SIGTERM, 5)
            self.proc.wait()
            self.proc = None
            self.logf.close()

    def admin(self, command):
        if self.proc is not None and self.proc.poll() is not None:
            raise ClusterError("haproxy exited with %d" % self.proc.returncode)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(5)
            s.connect(self.sock)
            s.sendall(command.encode() + b"\n")
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    return out.decode()
                out += d
        except OSError:
            return ""
        finally:
            s.close()

    def status(self):
        """{server name: "UP" | "DOWN" | ...} for the backend's servers."""
        out = {}
        lines = self.admin("show stat").splitlines()
        if not lines:
            return out
        head = lines[0].lstrip("# ").split(",")
        for ln in lines[1:]:
            row = dict(zip(head, ln.split(",")))
            if row.get("pxname") == "hfs" and row.get("svname") not in (
                    "BACKEND", "FRONTEND", None):
                out[row["svname"]] = row.get("status", "").split()[0]
        return out

    def wait_status(self, name, want, timeout=15):
        return hfs.wait_for(lambda: self.status().get(name, "").startswith(
            want), timeout, "HAProxy to see %s %s (%r)" % (
                name, want, self.status()))


class Cluster:
    """Gluster volume + `nodes` daemons + HAProxy. The daemons' overrides
    apply to every node. Requests through HAProxy with .put/.get/.request,
    like an hfs.Daemon (.port is HAProxy's)."""

    def __init__(self, nodes=3, **overrides):
        self.count = nodes
        self.overrides = overrides
        self.lock = MachineLock()
        self.gluster = None
        self.nodes = []
        self.haproxy = None

    def __enter__(self):
        require()
        self.lock.__enter__()
        try:
            self.gluster = Gluster(mounts=self.count)
            self.root = self.gluster.root
            self.gluster.start()
            for m in self.gluster.mounts:
                for d in ("storage", "staging"):
                    os.makedirs(os.path.join(m, d), exist_ok=True)
            for i, m in enumerate(self.gluster.mounts):
                n = Node("node%d" % (i + 1), m, **self.overrides)
                self.nodes.append(n)
                n.start()
            self.haproxy = HAProxy(self.root, self.nodes).start()
        except BaseException:
            self.teardown(failed=True)
            raise
        # The proxy speaks HTTP like a daemon: borrow hfs.Daemon's client.
        self.front = _Front(self)
        return self

    def __exit__(self, etype, exc, tb):
        problems = self.teardown(failed=etype is not None)
        if problems and etype is None:
            raise AssertionError("cluster teardown: " + "; ".join(problems))
        return False

    def teardown(self, failed):
        problems = []
        if self.haproxy is not None:
            if failed:
                print("---- haproxy log\n%s" % _tail(self.haproxy.log_path))
            self.haproxy.stop()
        for n in self.nodes:
            if failed:
                print("---- %s log tail\n%s" % (n.name, n.log_tail(30)))
            if n.proc is not None:
                problems += ["%s: %s" % (n.name, p) for p in n.stop()]
        if self.gluster is not None:
            if failed:
                print("---- glusterd log tail\n%s"
                      % self.gluster.log_tail("glusterd.log"))
            problems += self.gluster.stop()
        for n in self.nodes:
            n.cleanup()
        self.lock.__exit__(None, None, None)
        return problems

    # -- nodes

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def kill9(self, node):
        t0 = time.monotonic()
        node.kill9()
        self.haproxy.wait_status(node.name, "DOWN")
        print("measured: HAProxy marked %s down %.2f s after kill -9"
              % (node.name, time.monotonic() - t0))

    def restart(self, node):
        node.restart()
        self.haproxy.wait_status(node.name, "UP")

    # -- requests through HAProxy (same API as hfs.Daemon)

    def __getattr__(self, name):
        if name in ("put", "get", "head", "request", "put_stream", "conn",
                    "put_url", "put_target", "url", "target"):
            return getattr(self.__dict__["front"], name)
        raise AttributeError(name)

    @property
    def port(self):
        return self.haproxy.port

    @property
    def storage(self):
        return self.nodes[0].storage


class _Front(hfs.Daemon):
    """hfs.Daemon's request helpers pointed at HAProxy (no process)."""

    def __init__(self, cluster):   # no super(): nothing to start or create
        self.port = cluster.haproxy.port
        self.prefix = cluster.nodes[0].prefix


def _tail(path, n=30):
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace")
                             .splitlines()[-n:])
    except OSError:
        return "(none)"
