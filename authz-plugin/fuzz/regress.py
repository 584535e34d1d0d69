#!/usr/bin/env python3
"""Turn a fuzz artifact into a row of the attack corpus (tests/corpus.jsonl), so that every input
the fuzzer ever crashed on is decided in `cargo test` from then on.
Usage: regress.py TARGET ARTIFACT EXPECT WHY   (TARGET: authz_request or body)"""
import base64, json, os, sys

target, path, expect, why = sys.argv[1:5]
data = open(path, "rb").read()
name = f"fuzz regression {target} {os.path.basename(path)[:20]}"
if target == "authz_request":
    req = json.loads(data)
    headers = {k.lower(): v for k, v in (req.get("RequestHeaders") or {}).items()}
    row = {"name": name, "method": req.get("RequestMethod", ""), "uri": req.get("RequestUri", ""),
           "body": None, "body_b64": None,
           "content_type": headers.get("content-type"), "content_length": headers.get("content-length"),
           "user": req.get("User"), "expect": expect, "why": why}
    if req.get("RequestBody") is not None:
        row["body_b64"] = req["RequestBody"]
elif target == "body":
    row = {"name": name, "method": "POST", "uri": "/v1.41/containers/create", "body": None,
           "body_b64": base64.b64encode(data).decode(), "content_type": "application/json",
           "content_length": None, "user": None, "expect": expect, "why": why}
else:
    sys.exit(f"no corpus form for target {target}")
corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "corpus.jsonl")
with open(corpus, "a", encoding="utf-8") as f:
    f.write(json.dumps(row) + "\n")
print(f"added: {name}")
