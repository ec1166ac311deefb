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
must finish does.

A link that drops every few seconds, whatever is on it:

    with cutproxy.CutProxy(d.port, drop_every=(2.0, 5.0), down=0.5,
                           seed=3) as p:
        ...
        p.drops         # drops that cut at least one connection

Every drop_every seconds (drawn in [lo, hi] for each drop) every open
connection is reset at once, and for `down` seconds after that new
connections are reset as soon as they are accepted (the link is down).
Both kinds of cut can be combined. rate=BYTES_PER_S makes the link that
slow (client to server, shared by all connections), as a real one is.

As a command, for manual runs and for non-Python clients:

    python3 tests/integration/cutproxy.py TARGET_PORT [CUT_MIN CUT_MAX [SEED]]
    python3 tests/integration/cutproxy.py --drop-every LO HI [DOWN [SEED]] TARGET_PORT

prints the port it listens on, then runs until killed.
"""

import random
import select
import socket
import struct
import sys
import threading
import time


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
                 cuts_left=None, host="127.0.0.1", drop_every=None, down=0.0,
                 rate=None):
        self.target = (host, target_port)
        self.cut_min = cut_min
        self.cut_max = cut_max if cut_max is not None else cut_min
        self.rng = random.Random(seed)
        self.cuts_left = cuts_left
        self.cuts = 0
        self.bytes_up = 0
        self.connections = 0
        self.drops = 0
        self.drop_every = drop_every
        self.down = down
        self.down_until = 0.0
        self.live = set()           # threading.Events of open connections
        self.drop_rng = random.Random(seed)
        self.rate = rate            # client -> server bytes/s, all connections
        self.next_free = 0.0
        # A drop is noticed within a tick by a connection with no traffic.
        self.tick = 0.05 if drop_every is not None else 0.5
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
        if self.drop_every is not None:
            threading.Thread(target=self._dropper, daemon=True).start()
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

    def _dropper(self):
        """Every drop_every seconds: the link goes away (every connection
        reset) and stays down for `down` seconds."""
        lo, hi = self.drop_every
        while not self.stop.wait(self.drop_rng.uniform(lo, hi)):
            with self.lock:
                self.down_until = time.monotonic() + self.down
                if self.live:
                    self.drops += 1
                for ev in self.live:
                    ev.set()

    def _pace(self, n):
        """Holds n bytes until the link (rate bytes/s) has room for them."""
        if not self.rate:
            return
        with self.lock:
            now = time.monotonic()
            end = self.next_free = max(now, self.next_free) + n / self.rate
        time.sleep(end - now)

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
        with self.lock:
            if time.monotonic() < self.down_until:
                _reset(c)                   # the link is down
                return
        try:
            s = socket.create_connection(self.target, timeout=10)
        except OSError:
            _reset(c)
            return
        s.settimeout(None)
        dropped = threading.Event()
        with self.lock:
            self.live.add(dropped)
        try:
            cut = self._forward(c, s, budget, dropped)
        finally:
            with self.lock:
                self.live.discard(dropped)
        if cut:
            _reset(c)
            _reset(s)
        else:
            # An ordinary end: close politely, so an answer the client has
            # not read yet is not thrown away by a reset.
            c.close()
            s.close()

    def _forward(self, c, s, left, dropped):
        """Copies both ways until either side ends (False), or the client
        has sent `left` bytes or the link drops (True: cut)."""
        try:
            while not self.stop.is_set():
                r, _, _ = select.select([c, s], [], [], self.tick)
                if dropped.is_set():
                    with self.lock:
                        self.cuts += 1
                    return True
                for src in r:
                    data = src.recv(65536)
                    if not data:
                        return False
                    if src is s:
                        c.sendall(data)
                        continue
                    n = len(data) if left is None else min(len(data), left)
                    self._pace(n)
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
    if len(argv) >= 2 and argv[1] == "--drop-every" and 5 <= len(argv) <= 7:
        kw = dict(drop_every=(float(argv[2]), float(argv[3])))
        rest = argv[4:]
        target = int(rest.pop())
        kw["down"] = float(rest[0]) if rest else 0.0
        seed = int(rest[1]) if len(rest) > 1 else 0
        proxy = CutProxy(target, seed=seed, **kw)
    elif len(argv) in (2, 4, 5):
        target = int(argv[1])
        lo = int(argv[2]) if len(argv) > 2 else None
        hi = int(argv[3]) if len(argv) > 3 else None
        seed = int(argv[4]) if len(argv) > 4 else 0
        proxy = CutProxy(target, lo, hi, seed)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    with proxy as p:
        print(p.port, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
