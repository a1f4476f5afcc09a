#!/usr/bin/env python3
"""Independent Standard Webhooks v1 check of Waggle's signer/verifier with PyPI `standardwebhooks`.

verify: read JSON lines from `cargo run --example sig_interop webhooks` on stdin; for each line and
        each listed `whsec_` secret, verify the headers against the payload with the reference
        library. Lines with "expect": "fail" (expired, tampered, foreign key) must be refused.
sign:   sign deliveries with the reference library (one or two secrets, plus an unknown-version
        entry) and print JSON lines for `sig_interop webhooks-verify`.

Line shape: {"name", "expect": "ok"|"fail", "payload" (UTF-8 text, signed verbatim),
             "headers": {"webhook-id", "webhook-timestamp", "webhook-signature"}, "secrets": [whsec_…]}
"""
import base64
import datetime
import json
import sys

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

NEW_SECRET = "whsec_" + base64.b64encode(b"py-interop-new-secret-0123456789").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"py-interop-old-secret-9876543210").decode()
FOREIGN_SECRET = "whsec_" + base64.b64encode(b"py-interop-foreign-secret-abcdef").decode()


def verify(stream):
    failures = 0
    count = 0
    for raw in stream:
        if not raw.strip():
            continue
        count += 1
        line = json.loads(raw)
        name, expect = line["name"], line["expect"]
        outcomes = []
        for secret in line["secrets"]:
            try:
                Webhook(secret).verify(line["payload"].encode(), line["headers"], json_parse=False)
                outcomes.append("ok")
            except WebhookVerificationError as e:
                outcomes.append(f"fail({e})")
        good = all(o == "ok" for o in outcomes) if expect == "ok" else all(o != "ok" for o in outcomes)
        if good and outcomes:
            print(f"OK   {name} expect={expect} got={outcomes}")
        else:
            failures += 1
            print(f"FAIL {name} expect={expect} got={outcomes}")
    return failures == 0 and count > 0


def sign_one(name, expect, msg_id, ts, payload, signers, verify_with, extra_entries=()):
    when = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    entries = list(extra_entries) + [Webhook(s).sign(msg_id, when, payload) for s in signers]
    return {
        "name": name,
        "expect": expect,
        "payload": payload,
        "headers": {
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": " ".join(entries),
        },
        "secrets": verify_with,
    }


def sign():
    now = int(datetime.datetime.now(tz=datetime.timezone.utc).timestamp())
    body = json.dumps({"type": "note.created", "timestamp": "2024-05-01T12:00:00Z",
                       "data": {"id": "42", "title": "h\u00e9 \U0001f41d"}}, separators=(",", ":"),
                      ensure_ascii=False)
    ed = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="
    cases = [
        sign_one("py-single", "ok", "msg_py_single", now, body, [NEW_SECRET], [NEW_SECRET]),
        sign_one("py-rotation", "ok", "msg_py_rotation", now, body, [NEW_SECRET, OLD_SECRET],
                 [NEW_SECRET, OLD_SECRET]),
        sign_one("py-unknown-version", "ok", "msg_py_v1a", now, body, [NEW_SECRET], [NEW_SECRET], [ed]),
        sign_one("py-empty-payload", "ok", "msg_py_empty", now, "", [NEW_SECRET], [NEW_SECRET]),
        sign_one("py-edge-past", "ok", "msg_py_past", now - 240, body, [NEW_SECRET], [NEW_SECRET]),
        sign_one("py-expired", "fail", "msg_py_expired", now - 400, body, [NEW_SECRET], [NEW_SECRET]),
        sign_one("py-future", "fail", "msg_py_future", now + 400, body, [NEW_SECRET], [NEW_SECRET]),
        sign_one("py-foreign-key", "fail", "msg_py_foreign", now, body, [FOREIGN_SECRET], [NEW_SECRET]),
    ]
    tampered = sign_one("py-tampered", "fail", "msg_py_tampered", now, body, [NEW_SECRET], [NEW_SECRET])
    tampered["payload"] = body.replace("42", "43")
    cases.append(tampered)
    for case in cases:
        print(json.dumps(case, ensure_ascii=False))
    return True


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "verify":
        sys.exit(0 if verify(sys.stdin) else 1)
    elif mode == "sign":
        sys.exit(0 if sign() else 1)
    print("usage: standard_webhooks.py verify|sign", file=sys.stderr)
    sys.exit(2)
