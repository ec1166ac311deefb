"""cutproxy: a loopback TCP proxy that cuts connections, for testing clients
that must survive a link that drops (Python 3 standard library).

    with cutproxy.CutProxy(d.port, cut_min=256 << 10, cut_max=4 << 20,
                           seed=7) as p:
        url = "http://127.0.0.1:%d/..." % p.port     # the client talks here
        ...
        p.cuts          # connections cut so far
        p.bytes_up      # client -> server bytes forwarded

Every accepted connection is forwarded to 127.0.0.1:<target_port>. After a
random number of client-to-server bytes, drawn for each connection in
[cut_min, cut_max], both sides are reset (SO_LINGER 0): to the client it
looks like a dropped mobile link, to the daemon like a client that vanished.
cut_min=None forwards without cutting. `cuts_left` bounds how many
connections are cut (after that the proxy only forwards), so a test that
must finish does. As a command, for manual runs and for non-Python clients:

    python3 tests/integration/cutproxy.py TARGET_PORT [CUT_MIN CUT_MAX [SEED]]

prints the port it listens on, then runs until killed.
"""

import random
import select
import socket
import struct
import sys
import threading


def _reset(s):
    """Close with RST, not FIN: a dropped link, not a polite goodbye."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


class CutProxy:
    def __init__(self, target_port, cut_min=None, cut_max=None, seed=0,
                 cuts_left=None, host="127.0.0.1"):
        self.target = (host, target_port)
        self.cut_min = cut_min
        self.cut_max = cut_max if cut_max is not None else cut_min
        self.rng = random.Random(seed)
        self.cuts_left = cuts_left
        self.cuts = 0
        self.bytes_up = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, 0))
        self.ls.listen(128)
        self.port = self.ls.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.stop.set()
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ls.close()
        self.thread.join(5)

    def _budget(self):
        with self.lock:
            self.connections += 1
            if self.cut_min is None or self.cuts_left == 0:
                return None
            return self.rng.randint(self.cut_min, self.cut_max)

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(c, self._budget()),
                             daemon=True).start()

    def _pipe(self, c, budget):
        try:
            s = socket.create_connection(self.target, timeout=10)
        except OSError:
            _reset(c)
            return
        s.settimeout(None)
        if self._forward(c, s, budget):
            _reset(c)
            _reset(s)
        else:
            # An ordinary end: close politely, so an answer the client has
            # not read yet is not thrown away by a reset.
            c.close()
            s.close()

    def _forward(self, c, s, left):
        """Copies both ways until either side ends (False) or the client
        has sent `left` bytes (True: cut)."""
        try:
            while not self.stop.is_set():
                r, _, _ = select.select([c, s], [], [], 0.5)
                for src in r:
                    data = src.recv(65536)
                    if not data:
                        return False
                    if src is s:
                        c.sendall(data)
                        continue
                    n = len(data) if left is None else min(len(data), left)
                    s.sendall(data[:n])
                    with self.lock:
                        self.bytes_up += n
                    if left is not None:
                        left -= n
                        if left == 0:
                            with self.lock:
                                self.cuts += 1
                                if self.cuts_left is not None:
                                    self.cuts_left -= 1
                            return True
        except OSError:
            pass
        return False


def main(argv):
    if len(argv) not in (2, 4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    target = int(argv[1])
    lo = int(argv[2]) if len(argv) > 2 else None
    hi = int(argv[3]) if len(argv) > 3 else None
    seed = int(argv[4]) if len(argv) > 4 else 0
    with CutProxy(target, lo, hi, seed) as p:
        print(p.port, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
