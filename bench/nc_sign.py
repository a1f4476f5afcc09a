#!/usr/bin/env python3
"""Pre-signs `/nc` callback requests (docs/PROTOCOL.md §5, tag "waggle-nc"). Standard library only.

    nc_sign.py selftest
        checks the implementation against the PROTOCOL.md §7 "callback-propfind" vector.
    nc_sign.py propfind --count N --out FILE [--target T] [--user U]
        N signed `POST` + `X-HTTP-Method-Override: PROPFIND` requests with an empty body, each with its
        own nonce, all with created = now. FILE: first line "<created> <expires> <keyid> <target> <user>",
        then one line "<nonce> <base64 signature>" per request (read by nc_propfind.lua).
    nc_sign.py headers --method M --target T [--user U] [--body FILE] [--content-type CT] [--override V]
        one signed request; prints its headers one per line ("Name: value"), for `curl -H @file`.

Key material from the environment: WAGGLE_TENANT_KEY, WAGGLE_TENANT_KEY_ID.
"""
import argparse
import base64
import hashlib
import hmac
import os
import secrets
import sys
import time

EMPTY_DIGEST = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"


def digest_of_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return "sha-256=:" + base64.b64encode(h.digest()).decode() + ":"


def sign(key, keyid, method, target, user, digest, override=None, content_type=None,
         created=None, nonce=None):
    """-> (signature_input_header, signature_header, covered dict)."""
    created = int(time.time()) if created is None else created
    nonce = secrets.token_urlsafe(16) if nonce is None else nonce
    comps = [("@method", method)]
    if override is not None:
        comps.append(("x-http-method-override", override))
    comps += [("x-waggle-target", target), ("x-waggle-user", user), ("content-digest", digest)]
    if content_type is not None:
        comps.append(("content-type", content_type))
    params = "(" + " ".join('"%s"' % n for n, _ in comps) + ")" + \
        ';created=%d;expires=%d;nonce="%s";keyid="%s";alg="hmac-sha256";tag="waggle-nc"' % (
            created, created + 300, nonce, keyid)
    base = "\n".join('"%s": %s' % (n, v) for n, v in comps) + '\n"@signature-params": ' + params
    mac = hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()
    return "sig1=" + params, "sig1=:" + base64.b64encode(mac).decode() + ":", base


def selftest():
    body = b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>'
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    assert digest == "sha-256=:xXAzvTd1wdUllFbMBz4U5y2cnj+g3nhuRxScwQuwNQo=:", digest
    si, sig, _ = sign("wgl-test-tenant-key-3f9a1c", "k2026a", "POST", "/remote.php/dav/files/alice/", "alice",
                      digest, override="PROPFIND", content_type="application/xml; charset=utf-8",
                      created=1767225600, nonce="Zq8Xw3Ve6Rt1Yu4Io7Pa0S")
    assert sig == "sig1=:V439Yy3X0PrUL8wFVO///pvLhlTE2tF/245ZGmOpEv4=:", sig
    assert si.startswith('sig1=("@method" "x-http-method-override" "x-waggle-target" "x-waggle-user" '
                         '"content-digest" "content-type");created=1767225600;expires=1767225900;'), si
    print("selftest ok (PROTOCOL.md §7 callback-propfind)")


def env_key():
    key, keyid = os.environ.get("WAGGLE_TENANT_KEY"), os.environ.get("WAGGLE_TENANT_KEY_ID")
    if not key or not keyid:
        sys.exit("nc_sign.py: set WAGGLE_TENANT_KEY and WAGGLE_TENANT_KEY_ID")
    return key, keyid


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("selftest")
    p = sub.add_parser("propfind")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--target", default="/remote.php/dav/files/alice/")
    p.add_argument("--user", default="alice")
    h = sub.add_parser("headers")
    h.add_argument("--method", required=True)
    h.add_argument("--target", required=True)
    h.add_argument("--user", default="alice")
    h.add_argument("--body")
    h.add_argument("--content-type", default="application/octet-stream")
    h.add_argument("--override")
    a = ap.parse_args()
    if a.cmd == "selftest":
        return selftest()
    key, keyid = env_key()
    if a.cmd == "propfind":
        if not 1 <= a.count <= 5_000_000:
            sys.exit("--count must be 1..5000000")
        created = int(time.time())
        with open(a.out, "w") as f:
            f.write("%d %d %s %s %s\n" % (created, created + 300, keyid, a.target, a.user))
            for _ in range(a.count):
                nonce = secrets.token_urlsafe(16)
                _, sig, _ = sign(key, keyid, "POST", a.target, a.user, EMPTY_DIGEST, override="PROPFIND",
                                 created=created, nonce=nonce)
                f.write("%s %s\n" % (nonce, sig[len("sig1=:"):-1]))
        return
    digest = digest_of_file(a.body) if a.body else EMPTY_DIGEST
    ct = a.content_type if a.body and os.path.getsize(a.body) > 0 else None
    si, sig, _ = sign(key, keyid, a.method.upper(), a.target, a.user, digest, override=a.override,
                      content_type=ct)
    lines = ["X-Waggle-Target: " + a.target, "X-Waggle-User: " + a.user, "Content-Digest: " + digest,
             "Signature-Input: " + si, "Signature: " + sig]
    if a.override:
        lines.insert(0, "X-HTTP-Method-Override: " + a.override)
    if ct:
        lines.append("Content-Type: " + ct)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
