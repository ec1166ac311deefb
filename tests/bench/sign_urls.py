#!/usr/bin/env python3
"""sign_urls.py: upload URLs for the PUT benchmark, signed with v1.

wrk's Lua has no HMAC, and SHA-256 in pure Lua would cost more than the
request it signs, so the URLs are computed here, before the clock starts.

  sign_urls.py --secret S --size N --tag T --threads 2 --count 50000 \
               --out DIR/urls [--unsigned]
      writes DIR/urls.1 .. DIR/urls.<threads>, one request target a line:
      /<tag>-<thread>-<i>/b.bin?v=HEX   (XEP-0363 shape: a directory per
      upload). --unsigned drops the query (the same paths for nginx).

  sign_urls.py --secret S --size N --one PATH
      prints the signed target of one relative PATH.

v1 = HEX(HMAC-SHA256(secret, path + " " + size)), path relative and
percent-decoded (docs/protocol.md); the paths used here need no encoding.
"""

import argparse
import hashlib
import hmac
import sys


def target(secret, path, size, signed=True):
    if not signed:
        return "/" + path
    mac = hmac.new(secret, ("%s %d" % (path, size)).encode(),
                   hashlib.sha256).hexdigest()
    return "/%s?v=%s" % (path, mac)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--one")
    ap.add_argument("--tag")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--count", type=int, default=50000,
                    help="URLs per thread")
    ap.add_argument("--out")
    ap.add_argument("--unsigned", action="store_true")
    a = ap.parse_args()
    secret = a.secret.encode()

    if a.one:
        print(target(secret, a.one, a.size))
        return 0
    if not (a.tag and a.out):
        ap.error("--tag and --out are needed without --one")
    for t in range(1, a.threads + 1):
        with open("%s.%d" % (a.out, t), "w") as f:
            for i in range(a.count):
                path = "%s-%d-%d/b.bin" % (a.tag, t, i)
                f.write(target(secret, path, a.size, not a.unsigned) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
