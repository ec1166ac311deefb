#!/usr/bin/env python3
"""sign_urls.py: a v1-signed request target for run.sh's curl uploads.

  sign_urls.py --secret S --size N --one PATH
      prints /PATH?v=HEX for the relative PATH of an upload of N bytes.

v1 = HEX(HMAC-SHA256(secret, path + " " + size)), path relative and
percent-decoded (docs/protocol.md); the paths used here need no encoding.
(The many-upload rows sign their own URLs: tests/tools/put_driver.c.)
"""

import argparse
import hashlib
import hmac
import sys


def target(secret, path, size):
    mac = hmac.new(secret, ("%s %d" % (path, size)).encode(),
                   hashlib.sha256).hexdigest()
    return "/%s?v=%s" % (path, mac)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--one", required=True)
    a = ap.parse_args()
    print(target(a.secret.encode(), a.one, a.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
