#!/usr/bin/env python3
"""Check, from `strace -f -ttt -T -y -s 300` of a running plugin, that every successful
mutating reply was preceded by a sync of the plugin's store that began after the request had
been read in full and ended before the reply was written.

Usage: durability_check.py STRACE_LOG PATH_PREFIX MUTATING_PATH... [-- OTHER_PATH...]
Prints one line per checked reply kind and every violation; exit 1 on any violation or when a
mutating path was never seen answered 200 (a check that saw nothing proves nothing).

Pairing: HTTP/1.1 from dockerd is one request at a time per connection, so the reply written on
a socket fd belongs to the last request read on that fd. The store's sync is fdatasync/fsync of
sled's data file (an fd whose path ends in "/db"); strace -y prints the path.
"""
import re
import sys

LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
CALL = re.compile(r"^(\w+)\((\d+)<([^>]*)>(.*)$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
DUR = re.compile(r"<(\d+\.\d+)>\s*$")
DATA = re.compile(r'^\s*,\s*"((?:[^"\\]|\\.)*)"')
RET = re.compile(r"\)\s+=\s+(-?\d+)")
READS = {"read", "recvfrom", "recvmsg", "readv"}
WRITES = {"write", "writev", "sendto", "sendmsg"}
SYNCS = {"fdatasync", "fsync"}


def events(path):
    """Completed syscalls as (name, fd, fdpath, args_text, ret, start, end)."""
    pending = {}  # (tid, name) -> (start, fd, fdpath, head)
    with open(path, errors="replace") as f:
        for raw in f:
            m = LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            tid, ts, rest = m.group(1), float(m.group(2)), m.group(3)
            r = RESUMED.match(rest)
            if r:
                name, tail = r.group(1), r.group(2)
                p = pending.pop((tid, name), None)
                if p is None:
                    continue
                start, fd, fdpath, head = p
                text = head + tail
            else:
                c = CALL.match(rest)
                if not c:
                    continue
                name, fd, fdpath, text = c.group(1), int(c.group(2)), c.group(3), c.group(4)
                start = ts
                if text.endswith("<unfinished ...>"):
                    pending[(tid, name)] = (start, fd, fdpath, text[: -len("<unfinished ...>")])
                    continue
            d = DUR.search(text)
            rv = RET.search(text)
            if not d or not rv:
                continue
            yield name, fd, fdpath, text, int(rv.group(1)), start, start + float(d.group(1))


def main():
    args = sys.argv[1:]
    log, prefix = args[0], args[1]
    rest = args[2:]
    others = []
    if "--" in rest:
        i = rest.index("--")
        rest, others = rest[:i], rest[i + 1 :]
    mutating = set(rest)
    syncs = []  # (start, end)
    last_req = {}  # fd -> (path, end time of last data read)
    replies = []  # (path, req_end, reply_start)
    requests = {}  # path -> number of requests read
    other_status = {}  # path -> non-200 replies
    for name, fd, fdpath, text, ret, start, end in events(log):
        if name in SYNCS and fdpath.endswith("/db") and ret == 0:
            syncs.append((start, end))
        elif name in READS and ret > 0 and ("socket:" in fdpath or "UNIX" in fdpath):
            d = DATA.match(text)
            data = d.group(1) if d else ""
            if re.match(r"(POST|GET|PUT|DELETE|HEAD) ", data):
                # A new request; its first read may be short (hyper peeks 24 bytes for the
                # HTTP/2 preface), so the path is taken from the reads put together.
                last_req[fd] = ["", end, data]
            elif fd in last_req:
                # The rest of the same request: it is read in full only now.
                last_req[fd][1] = end
                last_req[fd][2] += data
            else:
                continue
            m = re.match(r"POST (/[A-Za-z.]+) HTTP/1\.1", last_req[fd][2])
            if m and not last_req[fd][0]:
                last_req[fd][0] = m.group(1)
                requests[m.group(1)] = requests.get(m.group(1), 0) + 1
        elif name in WRITES and ret > 0 and ("socket:" in fdpath or "UNIX" in fdpath):
            if '"HTTP/1.1 ' in text and fd in last_req:
                p, req_end, _ = last_req.pop(fd)
                if '"HTTP/1.1 200' in text:
                    replies.append((p, req_end, start))
                else:
                    other_status[p] = other_status.get(p, 0) + 1
    syncs.sort()
    ok, bad, seen = {}, [], {}
    for p, req_end, reply_start in replies:
        seen[p] = seen.get(p, 0) + 1
        if p not in mutating:
            continue
        covered = any(s >= req_end and e <= reply_start for s, e in syncs)
        if covered:
            ok[p] = ok.get(p, 0) + 1
        else:
            bad.append(f"{p}: request read at {req_end:.6f}, 200 written at {reply_start:.6f}, "
                       "no store sync begun and finished in between")
    fails = 0
    for p in sorted(mutating):
        n = ok.get(p, 0) + sum(1 for b in bad if b.startswith(p + ":"))
        print(f"{prefix} {p}: {requests.get(p, 0)} requests, {n} replies 200, {ok.get(p, 0)} preceded "
              f"by a store sync begun after the request, {other_status.get(p, 0)} other replies")
        if n == 0:
            print(f"FAIL {prefix} {p}: never answered 200 during the run (nothing checked)")
            fails += 1
        if requests.get(p, 0) != n + other_status.get(p, 0):
            print(f"FAIL {prefix} {p}: {requests.get(p, 0)} requests but {n + other_status.get(p, 0)} "
                  "replies paired with them (the trace cannot be read as claimed)")
            fails += 1
    for p in others:
        print(f"{prefix} {p}: {seen.get(p, 0)} replies 200 (not required to sync)")
    for b in bad:
        print(f"FAIL {prefix} {b}")
    print(f"{prefix}: {len(syncs)} store syncs for {sum(ok.values()) + len(bad)} mutating replies")
    sys.exit(1 if bad or fails else 0)


if __name__ == "__main__":
    main()
