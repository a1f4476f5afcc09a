#!/usr/bin/env python3
"""Independent RFC 9421 check of Waggle's signing profile with PyPI `http-message-signatures`.

verify: read JSON lines signed by `cargo run --example sig_interop sign` from stdin and verify each
        (MAC, tag, covered components in order, parameters, Content-Digest against the body).
sign:   sign equivalent requests in Python (HMAC-SHA256, tag, nonce, created, keyid) and print
        JSON lines for `sig_interop verify`.
"""
import base64
import datetime
import hashlib
import json
import secrets
import sys

import requests
from http_message_signatures import HTTPMessageSigner, HTTPMessageVerifier, algorithms
from http_message_signatures.resolvers import MappingKeyResolver

KEY_ID = "py-interop-key"
TENANT_KEY = "wgl-python-tenant-key-51c0"
TAGS = {"api": "waggle-api", "callback": "waggle-nc"}
API_COMPONENTS = ["@method", "@authority", "@path", "@query", "content-digest", "x-waggle-user", "x-waggle-instance"]


def callback_components(headers, body):
    out = ["@method"]
    if any(k.lower() == "x-http-method-override" for k in headers):
        out.append("x-http-method-override")
    out += ["x-waggle-target", "x-waggle-user", "content-digest"]
    if body:
        out.append("content-type")
    return out


def content_digest(body):
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def prepare(method, url, headers, body):
    return requests.Request(method, url, headers=headers, data=body or None).prepare()


def verify(stream):
    failures = 0
    count = 0
    for raw in stream:
        if not raw.strip():
            continue
        count += 1
        line = json.loads(raw)
        name = line["name"]
        try:
            body = base64.b64decode(line["body_b64"])
            headers = {}
            for k, v in line["headers"]:
                assert k not in headers, f"duplicate header {k}"
                headers[k] = v
            req = prepare(line["method"], line["url"], headers, body)
            # Never let requests rewrite what was signed.
            for k, v in headers.items():
                assert req.headers[k] == v, f"requests changed header {k}"
            expected = API_COMPONENTS if line["purpose"] == "api" else callback_components(headers, body)
            verifier = HTTPMessageVerifier(
                signature_algorithm=algorithms.HMAC_SHA256,
                key_resolver=MappingKeyResolver(
                    public_keys={line["key_id"]: line["key"].encode()}, private_keys={}
                ),
            )
            verifier.max_clock_skew = datetime.timedelta(seconds=60)
            results = verifier.verify(
                req,
                max_age=datetime.timedelta(seconds=300),
                expect_tag=TAGS[line["purpose"]],
                require_components=expected,
                body=body,
            )
            assert len(results) == 1, "exactly one signature"
            res = results[0]
            covered = [k.strip('"') for k in res.covered_components if k != '"@signature-params"']
            assert covered == expected, f"covered {covered} != {expected}"
            p = res.parameters
            assert res.label == "sig1", res.label
            assert p["alg"] == "hmac-sha256" and p["keyid"] == line["key_id"], p
            assert p["expires"] - p["created"] == 300, p
            assert len(p["nonce"]) >= 16, p
            assert res.body == body
            print(f"OK   {name} covered={len(covered)}")
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            failures += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
    return failures == 0 and count > 0


def sign_one(name, purpose, method, url, headers, body):
    headers = dict(headers)
    headers["Content-Digest"] = content_digest(body)
    req = prepare(method, url, headers, body)
    covered = API_COMPONENTS if purpose == "api" else callback_components(headers, body)
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.HMAC_SHA256,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={KEY_ID: TENANT_KEY.encode()}),
    )
    created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    signer.sign(
        req,
        key_id=KEY_ID,
        created=created,
        expires=created + datetime.timedelta(seconds=300),
        nonce=secrets.token_urlsafe(16),
        label="sig1",
        tag=TAGS[purpose],
        covered_component_ids=covered,
        body=body,
        use_existing_digest=True,
    )
    return {
        "name": name,
        "purpose": purpose,
        "method": req.method,
        "url": req.url,
        "headers": [[k.lower(), v] for k, v in req.headers.items()],
        "body_b64": base64.b64encode(body).decode(),
        "key_id": KEY_ID,
        "key": TENANT_KEY,
    }


def sign():
    user = {"X-Waggle-User": "alice", "X-Waggle-Instance": "oc7h2k9x1q"}
    json_h = {"Content-Type": "application/json", **user}
    nc = "https://cloud.example.com/index.php/apps/app_api/proxy/waggle/nc"
    cases = [
        ("py-api-get-query", "api", "GET",
         "https://saas.example.com/api/v1/search?q=a%2Bb%26c%3Dd&name=R%C3%A9sum%C3%A9&empty=&flag", user, b""),
        ("py-api-post-json", "api", "POST", "https://SaaS.Example.com:443/api/v1/notes", json_h,
         '{"t":"h\u00e9"}'.encode()),
        ("py-api-empty-system", "api", "POST", "https://saas.example.com:8443/api/v1/sync",
         {"X-Waggle-User": "", "X-Waggle-Instance": "oc7h2k9x1q"}, b""),
        ("py-api-put", "api", "PUT", "http://127.0.0.1:8080/api/v1/items/7?v=2", json_h, b"[1,2,3]"),
        ("py-callback-propfind", "callback", "POST", nc + "/remote.php/dav/files/alice/",
         {"X-HTTP-Method-Override": "PROPFIND", "X-Waggle-Target": "/remote.php/dav/files/alice/",
          "X-Waggle-User": "alice", "Content-Type": "application/xml; charset=utf-8", "Depth": "1"},
         b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>'),
        ("py-callback-get", "callback", "GET", nc + "/ocs/v2.php/cloud/users/alice",
         {"X-Waggle-Target": "/ocs/v2.php/cloud/users/alice?format=json", "X-Waggle-User": "alice"}, b""),
    ]
    for case in cases:
        print(json.dumps(sign_one(*case)))
    return True


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "verify":
        sys.exit(0 if verify(sys.stdin) else 1)
    elif mode == "sign":
        sys.exit(0 if sign() else 1)
    print("usage: http_sig_interop.py verify|sign", file=sys.stderr)
    sys.exit(2)
