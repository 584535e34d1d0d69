#!/usr/bin/env python3
"""The real daemon as the authz oracle.

  oracle.py requests CORPUS            print one line per create body to send: kind<TAB>json
  oracle.py judge-container INSPECT    exit 1 (and say why) when dockerd applied something dangerous
  oracle.py judge-volume INSPECT       the same for a volume
  oracle.py plant HOSTFS_JSON          create the table's links and directories under
                                       /srv/containers (nothing elsewhere); print what was made

What counts as dangerous is what dockerd actually applied (docker inspect), judged independently
of the plugin's code: privileges, capabilities beyond Docker's default set, host namespaces,
relaxed confinement, unmasked paths, devices, host binds outside /srv/containers, unsafe sysctls,
local volumes that mount a device, a kernel filesystem or a host path outside /srv/containers.
"""
import os
import json
import posixpath
import sys

DEFAULT_CAPS = {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
                "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
                "AUDIT_WRITE"}
MASKED = {"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
          "/sys/firmware"}
READONLY = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
ROOT = "/srv/containers"


def under_root(p):
    p = "/" + posixpath.normpath("/" + p).lstrip("/")
    return p == ROOT or p.startswith(ROOT + "/")


def host_under_root(p):
    # What the kernel bound: the source with every link followed on this host (the test plants
    # links under the root, authz-plugin/tests/hostfs.json).
    return under_root(os.path.realpath("/" + posixpath.normpath("/" + p).lstrip("/")))


def danger_container(c):
    hc = c.get("HostConfig") or {}
    why = []
    if hc.get("Privileged"):
        why.append("privileged")
    for cap in (hc.get("CapAdd") or []) + (hc.get("Capabilities") or []):
        name = cap.upper()
        name = name[4:] if name.startswith("CAP_") else name
        if name not in DEFAULT_CAPS:
            why.append("capability " + cap)
    for k in ["NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode"]:
        v = str(hc.get(k) or "")
        if v == "host" or v.startswith("container:"):
            why.append(f"{k}={v}")
    for o in hc.get("SecurityOpt") or []:
        if o not in ("no-new-privileges", "no-new-privileges=true", "no-new-privileges:true",
                     "apparmor=docker-default") and not o.startswith("label=level:"):
            why.append("security option " + o[:60])
    if hc.get("MaskedPaths") is not None and not MASKED <= set(hc["MaskedPaths"]):
        why.append("masked paths unmasked")
    if hc.get("ReadonlyPaths") is not None and not READONLY <= set(hc["ReadonlyPaths"]):
        why.append("readonly paths writable")
    if hc.get("Devices") or hc.get("DeviceRequests") or hc.get("DeviceCgroupRules"):
        why.append("devices")
    for b in hc.get("Binds") or []:
        parts = b.split(":")
        if len(parts) >= 2 and parts[0].startswith("/") and not host_under_root(parts[0]):
            why.append("bind " + parts[0])
    for m in c.get("Mounts") or []:
        if m.get("Type") == "bind" and not host_under_root(m.get("Source", "")):
            why.append("bind mount " + m.get("Source", ""))
        elif m.get("Type") == "bind" and m.get("RW"):
            # A writable root lets the container plant links that later binds follow.
            why.append("writable bind mount " + m.get("Source", ""))
    for k in (hc.get("Sysctls") or {}):
        if k not in SAFE_SYSCTLS:
            why.append("sysctl " + k)
    if hc.get("VolumesFrom"):
        why.append("volumes-from")
    if hc.get("CgroupParent"):
        why.append("cgroup parent")
    if (hc.get("OomScoreAdj") or 0) < 0:
        why.append("negative oom score")
    if hc.get("Runtime") not in (None, "", "runc"):
        why.append("runtime " + str(hc.get("Runtime")))
    return why


def danger_volume(v):
    why = []
    if v.get("Driver") != "local":
        o = v.get("Options") or {}
        for k in ("path", "device", "source"):
            p = o.get(k, "")
            if p.startswith("/") and not host_under_root(p):
                why.append(f"{v.get('Driver')} {k}={p}")
        return why
    o = v.get("Options") or {}
    kind, opt, dev = o.get("type", ""), o.get("o", ""), o.get("device", "")
    flags = [f.strip() for f in opt.split(",")]
    if any(f in ("bind", "rbind", "remount", "move") for f in flags):
        if not (dev.startswith("/") and host_under_root(dev)):
            why.append("bind of " + dev)
    elif kind in ("", "tmpfs") and (kind == "tmpfs" or not dev):
        pass
    elif kind in ("nfs", "nfs4") and ("addr=" in opt or (":/" in dev and not dev.startswith("/"))):
        pass
    elif kind in ("cifs", "smb3") and dev.startswith("//"):
        pass
    else:
        why.append(f"type={kind} device={dev}")
    return why


def plant(table):
    made = []
    for path, kind, target in json.load(open(table)):
        if not path.startswith(ROOT + "/") or os.path.lexists(path):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if kind == "link":
            os.symlink(target, path)
        elif kind == "dir":
            os.makedirs(path)
        else:
            continue
        made.append(path)
    print("\n".join(made))
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "plant":
        return plant(sys.argv[2])
    if cmd == "requests":
        n = 0
        for line in open(sys.argv[2]):
            r = json.loads(line)
            if r["method"] != "POST" or r.get("body") in (None, "") or r.get("content_type") != "application/json":
                continue
            uri = r["uri"]
            kind = "container" if "/containers/create" in uri else "volume" if "/volumes/create" in uri else None
            if kind is None:
                continue
            try:
                body = json.loads(r["body"])
            except ValueError:
                continue  # not JSON: dockerd refuses it
            if not isinstance(body, dict):
                continue
            n += 1
            if kind == "volume" and "name" not in {k.lower() for k in body}:
                body["Name"] = f"orcv{n}"
            elif kind == "volume":
                body = {("Name" if k.lower() == "name" else k): (f"orcv{n}" if k.lower() == "name" else v)
                        for k, v in body.items()}
            print(f"{kind}\t{n}\t{r['name']}\t{json.dumps(body)}")
        return 0
    data = json.load(open(sys.argv[2]))
    item = data[0] if isinstance(data, list) else data
    why = danger_container(item) if cmd == "judge-container" else danger_volume(item)
    if len(sys.argv) > 3:
        # What a plain container gets anyway (e.g. the daemon's default cgroupns=host on
        # cgroup v1) is the daemon's setting, not something the request obtained.
        base = json.load(open(sys.argv[3]))
        base = base[0] if isinstance(base, list) else base
        ignore = set(danger_container(base))
        why = [w for w in why if w not in ignore]
    if why:
        print("; ".join(why))
        return 1
    return 0


sys.exit(main())
