"""powerfs: the daemon on a filesystem that can lose power (tests/powerfs).

    with PowerRig(**{"server.workers": 2}) as rig:
        rig.d.put(...)                      # storage and staging on powerfs
        rig.power_cut(p=0, seed=1)          # SIGKILL every daemon process
                                            # at once, drop what was not
                                            # synced, remount, restart
        rig.fs.ctl("fault fsync EIO 0 1 /staging/")

The FUSE tool keeps every write and name change in its own memory until
fsync/fdatasync/fsyncdir (POSIX-strict; see tests/powerfs/powerfs.h), so a
cut loses exactly what a power cut may lose. Its memory was the page cache:
the cut ends the process and the next mount sees only the backing
directory."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import hfs

POWERFS = os.environ.get("HFS_POWERFS") or os.path.join(
    hfs.REPO, "build", "tools", "powerfs")


def available():
    """None, or why powerfs cannot run here."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if os.geteuid() != 0:
        return "mounting FUSE needs root here"
    if not os.access(POWERFS, os.X_OK):
        return "%s not built (make check builds it)" % POWERFS
    return None


class PowerFS:
    def __init__(self, root):
        self.backing = os.path.join(root, "backing")
        self.mnt = os.path.join(root, "mnt")
        self.sock = os.path.join(root, "ctl.sock")
        self.log_path = os.path.join(root, "powerfs.log")
        os.makedirs(self.backing)
        os.makedirs(self.mnt)
        self.proc = None
        self.mounts = 0

    def mount(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([POWERFS, self.backing, self.mnt,
                                          self.sock], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("powerfs exited %s: %s" % (
                    self.proc.returncode, self.log_tail()))
            try:
                if self.ctl("ping", timeout=1) == "ok":
                    self.mounts += 1
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError("powerfs did not come up: " + self.log_tail())

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def ctl(self, cmd, timeout=60):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.sock)
            s.sendall(cmd.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                piece = s.recv(4096)
                if not piece:
                    break
                data += piece
        finally:
            s.close()
        return data.decode().strip()

    def cut(self, p=0.0, seed=1):
        """Drops what was not synced (all of it, or with p > 0 a random
        part, torn at 4 KiB), then the old mount is gone."""
        rep = self.ctl("cut %g %d" % (p, seed))
        if not rep.startswith("ok"):
            raise AssertionError("powerfs cut: " + rep)
        self.proc.wait(10)
        self._umount(lazy=True)
        return rep

    def _umount(self, lazy=False):
        args = ["umount"] + (["-l"] if lazy else []) + [self.mnt]
        return subprocess.run(args, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0

    def unmount(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if not self._umount():
                self._umount(lazy=True)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        else:
            self._umount(lazy=True)
        self.proc = None


def kill_all(d):
    """SIGKILL to the daemon's whole process group at once; waits until
    every process is gone."""
    os.killpg(d.pid, signal.SIGKILL)
    d.proc.wait(10)
    hfs.wait_for(lambda: not d.group_pids(), 10, "the process group to die")
    hfs._live.pop(d.pid, None)
    d.logf.close()
    d.proc = None


def start_again(d, tries=50):
    """Starts the same config; retries if the port was taken meanwhile
    (see test_torture.hard_restart)."""
    for attempt in range(tries):
        try:
            d.start()
            return
        except hfs.DaemonError as e:
            hfs._live.pop(d.pid, None)
            d.logf.close()
            d.proc = None
            if "Address already in use" not in str(e) or \
                    attempt == tries - 1:
                raise
            time.sleep(0.1)


class PowerRig:
    """A daemon whose storage.dir and storage.staging are on powerfs."""

    def __init__(self, **overrides):
        self.root = tempfile.mkdtemp(prefix="hfs-power-")
        self.fs = PowerFS(self.root)
        self.fs.mount()
        self.storage = os.path.join(self.fs.mnt, "storage")
        self.staging = os.path.join(self.fs.mnt, "staging")
        os.mkdir(self.storage)
        os.mkdir(self.staging)
        assert self.fs.ctl("syncall") == "ok"
        ov = {"storage.dir": self.storage, "storage.staging": self.staging,
              "server.workers": 2}
        # HFS_STORAGE_SYNC=batch: the power-cut tests in another mode
        # (`make power-cut-sites` with it shows batch's syncs are needed).
        if os.environ.get("HFS_STORAGE_SYNC"):
            ov["storage.sync"] = os.environ["HFS_STORAGE_SYNC"]
        ov.update({k.replace("__", "."): v for k, v in overrides.items()})
        try:
            self.d = hfs.Daemon(**ov)
        except BaseException:
            self.fs.unmount()
            shutil.rmtree(self.root, True)
            raise
        self.cuts = 0

    def __enter__(self):
        return self

    def __exit__(self, etype, exc, tb):
        try:
            if self.d.proc is not None:
                self.d.__exit__(etype, exc, tb)
            else:
                self.d.cleanup()
        finally:
            self.fs.unmount()
            if etype is not None:
                print("---- powerfs log tail\n" + self.fs.log_tail())
            if not os.environ.get("HFS_KEEP"):
                shutil.rmtree(self.root, True)
        return False

    def power_cut(self, p=0.0, seed=1):
        """Everything of the daemon dies at one instant, the unsynced state
        is dropped, the filesystem is mounted again and the daemon started
        on what survived (its recovery runs before it answers /health)."""
        kill_all(self.d)
        rep = self.fs.cut(p, seed)
        self.fs.mount()
        start_again(self.d)
        self.cuts += 1
        return rep

    def log_mark(self):
        return len(self.d.log())

    def staging_garbage(self):
        """Names under staging/ that recovery should have removed: one-shot
        files, anything not a fan-out directory, session directories that
        are not exactly {data, manifest}."""
        bad = []
        for name in sorted(os.listdir(self.staging)):
            full = os.path.join(self.staging, name)
            if len(name) != 2 or not os.path.isdir(full):
                bad.append(name)
                continue
            for key in os.listdir(full):
                sd = os.path.join(full, key)
                if not os.path.isdir(sd):
                    bad.append(name + "/" + key)
                elif sorted(os.listdir(sd)) != ["data", "manifest"]:
                    bad.append("%s/%s: %s" % (name, key,
                                              sorted(os.listdir(sd))))
        return bad

    def sessions(self):
        """Session directories left under staging/."""
        out = []
        for name in os.listdir(self.staging):
            full = os.path.join(self.staging, name)
            if os.path.isdir(full):
                out += [name + "/" + k for k in os.listdir(full)]
        return out

    def session_header(self, key):
        """(protocol, session id, path) from a session's HEADER record
        (docs/recovery.md, "Record format"), or None if unreadable."""
        try:
            with open(os.path.join(self.staging, key, "manifest"), "rb") as f:
                rec = f.read(8192)
            p = rec[20:]
            proto, off = p[0], 52
            n = int.from_bytes(p[off:off + 2], "little")
            sid = p[off + 2:off + 2 + n].decode("utf-8", "replace")
            off += 2 + n
            n = int.from_bytes(p[off:off + 2], "little")
            path = p[off + 2:off + 2 + n].decode("utf-8", "replace")
            return ({1: "chunked", 2: "tus", 3: "put"}.get(proto, proto),
                    sid, path)
        except (OSError, IndexError):
            return None
