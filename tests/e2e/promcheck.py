#!/usr/bin/env python3
"""Parse Prometheus text format (0.0.4) from stdin strictly; fail on any malformed line.

Usage: promcheck.py [NAME[{label="v",...}]]...  — prints the value of each named sample
(sum over samples whose labels include the given ones), after checking the whole scrape:
every sample belongs to a family with # TYPE, no family is declared twice, histogram buckets
are cumulative and end with +Inf equal to _count.
"""
import re
import sys

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def labels_of(text):
    out, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise ValueError(f"bad labels: {text!r}")
        out[m.group(1)] = m.group(2)
        pos = m.end()
    return out


def parse(lines):
    types, samples = {}, []
    for n, line in enumerate(lines, 1):
        line = line.rstrip('\n')
        if not line:
            continue
        if line.startswith('# TYPE '):
            _, _, name, kind = line.split(' ', 3)
            if name in types:
                raise ValueError(f"line {n}: family {name} declared twice")
            if kind not in ('counter', 'gauge', 'histogram', 'summary', 'untyped'):
                raise ValueError(f"line {n}: bad type {kind}")
            types[name] = kind
            continue
        if line.startswith('#'):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(f"line {n}: not a sample: {line!r}")
        name, lab, value = m.group(1), labels_of(m.group(3) or ''), m.group(4)
        v = float(value.replace('+Inf', 'inf').replace('-Inf', '-inf'))
        fam = name
        for suffix in ('_bucket', '_sum', '_count'):
            if name.endswith(suffix) and name[: -len(suffix)] in types:
                fam = name[: -len(suffix)]
        if fam not in types:
            raise ValueError(f"line {n}: sample {name} has no # TYPE")
        if types[fam] == 'counter' and not name.endswith('_total'):
            raise ValueError(f"line {n}: counter {name} does not end in _total")
        samples.append((name, lab, v))
    # Histograms: cumulative buckets, +Inf == _count.
    for fam, kind in types.items():
        if kind != 'histogram':
            continue
        series = {}
        for name, lab, v in samples:
            if name == fam + '_bucket':
                key = tuple(sorted((k, x) for k, x in lab.items() if k != 'le'))
                series.setdefault(key, []).append((lab['le'], v))
        counts = {tuple(sorted(lab.items())): v for name, lab, v in samples if name == fam + '_count'}
        for key, buckets in series.items():
            vals = [v for _, v in buckets]
            if vals != sorted(vals) or buckets[-1][0] != '+Inf':
                raise ValueError(f"{fam}{dict(key)}: buckets not cumulative or no +Inf")
            if counts.get(key) != buckets[-1][1]:
                raise ValueError(f"{fam}{dict(key)}: +Inf bucket != _count")
    return samples


def main():
    try:
        samples = parse(sys.stdin.readlines())
    except ValueError as e:
        print(f"invalid exposition: {e}", file=sys.stderr)
        return 1
    for q in sys.argv[1:]:
        m = re.match(r'^([^{]+)(\{(.*)\})?$', q)
        name, want = m.group(1), labels_of(m.group(3) or '')
        hits = [v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in want.items())]
        if not hits:
            print(f"no sample {q}", file=sys.stderr)
            return 1
        s = sum(hits)
        print(int(s) if s == int(s) else s)
    return 0


if __name__ == '__main__':
    sys.exit(main())
