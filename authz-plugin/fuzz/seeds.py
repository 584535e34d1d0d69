#!/usr/bin/env python3
"""Seed inputs for the fuzz targets, made from the attack corpus (tests/corpus.jsonl) and the
example policy: one file per row and target. Usage: seeds.py OUT_DIR"""
import base64, json, os, sys

here = os.path.dirname(os.path.abspath(__file__))
out = sys.argv[1]
corpus = os.path.join(here, "..", "tests", "corpus.jsonl")
policy = open(os.path.join(here, "..", "..", "deploy", "authz", "policy.example.toml"), "rb").read()
for t in ("authz_request", "body", "route", "policy_compile"):
    os.makedirs(os.path.join(out, t), exist_ok=True)

def put(target, name, data):
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)

for n, line in enumerate(open(corpus, encoding="utf-8")):
    row = json.loads(line)
    if row.get("body_b64") is not None:
        body = base64.b64decode(row["body_b64"])
    elif row.get("body") is not None:
        body = row["body"].encode("utf-8", "surrogatepass")
    else:
        body = None
    headers = {}
    if row.get("content_type"):
        headers["Content-Type"] = row["content_type"]
    if row.get("content_length"):
        headers["Content-Length"] = row["content_length"]
    req = {"RequestMethod": row["method"], "RequestUri": row["uri"], "RequestHeaders": headers}
    if row.get("user"):
        req["User"] = row["user"]
        req["UserAuthNMethod"] = "TLS"
    if body is not None:
        req["RequestBody"] = base64.b64encode(body).decode()
    put("authz_request", f"row{n:04}", json.dumps(req).encode())
    if body:
        put("body", f"row{n:04}", body)
    put("route", f"row{n:04}", f"{row['method']} {row['uri']}".encode("utf-8", "surrogatepass"))

put("policy_compile", "example", policy)
put("policy_compile", "restricted", policy.replace(b'profile = "baseline"', b'profile = "restricted"'))
put("policy_compile", "minimal", b'default = "allow"\n')

# Every input the fuzzer ever crashed on (kept in regressions/, also rows of the corpus or unit
# tests) seeds its target again.
reg = os.path.join(here, "regressions")
for t in os.listdir(reg) if os.path.isdir(reg) else []:
    for f in os.listdir(os.path.join(reg, t)):
        put(t, "regression-" + f, open(os.path.join(reg, t, f), "rb").read())
