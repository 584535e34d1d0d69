#!/usr/bin/env python3
"""Print the README's settings table from deploy/*/config.json (the source of truth)."""
import json, pathlib
root = pathlib.Path(__file__).resolve().parent.parent
print("| plugin | setting | default | meaning |")
print("|---|---|---|---|")
for p in ["volume", "network", "overlay", "ipam", "authz"]:
    cfg = json.loads((root / "deploy" / p / "config.json").read_text())
    for e in cfg.get("env", []):
        v = e.get("value")
        v = "(empty)" if v in ("", None) else f"`{v}`"
        print(f"| {p} | `{e['name']}` | {v} | {e.get('description','').replace('|','/')} |")
    for m in cfg.get("mounts", []):
        if "source" in m.get("settable", []):
            print(f"| {p} | `{m['name']}.source` | `{m.get('source')}` | mount at `{m['destination']}`: {m.get('description','').replace('|','/')} |")
