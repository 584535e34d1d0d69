//! [`Facts`]: what the predicates and the profile look at, extracted once per request from
//! its body (and query), for every action that carries one.

use super::*;

/// What the predicates look at, extracted once per request from its body (and query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `Privileged` set (create, legacy start host config, exec).
    pub privileged: bool,
    /// Added capabilities (`CapAdd`, `Capabilities`, service `CapabilityAdd`), upper-case,
    /// without `CAP_`.
    pub caps: Vec<String>,
    /// Any `Devices`, `DeviceRequests` or `DeviceCgroupRules`.
    pub devices: bool,
    /// Host namespaces asked for: `network`, `pid`, `ipc`, `uts`, `userns`, `cgroup`.
    pub host_namespaces: Vec<&'static str>,
    /// Security options normalised to `key=value` (`seccomp:unconfined` → `seccomp=unconfined`);
    /// empty `MaskedPaths` shows as `systempaths=unconfined`.
    pub security_opts: Vec<String>,
    /// Host paths bound into a container or a volume, lexically cleaned.
    pub host_paths: Vec<String>,
    /// Sysctl names.
    pub sysctls: Vec<String>,
    /// Image references named.
    pub images: Vec<String>,
    /// For each of `images`, the names it is matched by ([`image_names`]); filled by
    /// [`Facts::finish`] so that rules do not recompute them.
    pub image_names: Vec<Vec<String>>,
    /// Which facts are present (bits of [`present`]); filled by [`Facts::finish`]. A rule whose
    /// predicates need an absent fact is skipped without being looked at.
    pub present: u16,
    /// An exec that runs as root (`User` empty, `root`, `0`, `root:…`, `0:…`).
    pub exec_root: bool,
    /// Why volume options (of `volume create` or a mount's volume driver config) are not
    /// provably safe ([`volume_risk`]).
    pub unsafe_volumes: Vec<String>,
    /// Containers whose namespaces (`container:X`) or volumes (`VolumesFrom`) are shared.
    pub shared_with: Vec<String>,
    /// Containers shared or acted on that the plugin has no record of
    /// ([`crate::containers`]); filled when the request is resolved against the records.
    pub unseen: Vec<String>,
}

/// Bits of [`Facts::present`].
pub mod present {
    /// `privileged` is true.
    pub const PRIVILEGED: u16 = 1;
    /// Capabilities are added.
    pub const CAPS: u16 = 1 << 1;
    /// Devices are asked for.
    pub const DEVICES: u16 = 1 << 2;
    /// Host namespaces are asked for.
    pub const HOST_NS: u16 = 1 << 3;
    /// Security options are given.
    pub const SECURITY_OPTS: u16 = 1 << 4;
    /// Host paths are bound.
    pub const HOST_PATHS: u16 = 1 << 5;
    /// Sysctls are set.
    pub const SYSCTLS: u16 = 1 << 6;
    /// Images are named.
    pub const IMAGES: u16 = 1 << 7;
    /// The exec runs as root.
    pub const EXEC_ROOT: u16 = 1 << 8;
    /// Volume options are not provably safe.
    pub const UNSAFE_VOLUMES: u16 = 1 << 9;
    /// Another container's namespaces or volumes are shared.
    pub const SHARED: u16 = 1 << 10;
    /// A container shared or acted on is unknown to the plugin.
    pub const UNSEEN: u16 = 1 << 11;
}

/// Look up a folded key.
fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| m.get(key))
}

/// A value that is present and not `false`/`null` counts as set (dockerd rejects the odd types,
/// so over-matching them only denies what would fail anyway).
fn truthy(v: Option<&Value>) -> bool {
    !matches!(v, None | Some(Value::Null) | Some(Value::Bool(false)))
}

/// Strings of a JSON array (or a lone string), other values as their JSON text.
pub fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn non_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

impl Facts {
    /// Host-config facts of one object (the `HostConfig`, or the top level where dockerd still
    /// reads the deprecated embedded host config).
    fn add_host_config(&mut self, hc: &Value) {
        if !hc.is_object() {
            return;
        }
        self.privileged |= truthy(get(hc, "privileged"));
        for key in ["capadd", "capabilities"] {
            self.caps
                .extend(strings(get(hc, key)).iter().map(|c| cap_name(c)));
        }
        for key in ["devices", "devicerequests", "devicecgrouprules"] {
            self.devices |= non_empty(get(hc, key));
        }
        for (key, ns) in [
            ("networkmode", "network"),
            ("pidmode", "pid"),
            ("ipcmode", "ipc"),
            ("utsmode", "uts"),
            ("usernsmode", "userns"),
            ("cgroupnsmode", "cgroup"),
        ] {
            if let Some(Value::String(m)) = get(hc, key) {
                if m.trim().eq_ignore_ascii_case("host") && !self.host_namespaces.contains(&ns) {
                    self.host_namespaces.push(ns);
                }
            }
        }
        // Options that keep dockerd's defaults are no facts: rules and globs see relaxations only.
        self.security_opts.extend(
            strings(get(hc, "securityopt"))
                .iter()
                .map(|o| security_opt(o))
                .filter(|o| {
                    !matches!(
                        o.as_str(),
                        "seccomp=default" | "apparmor=default" | "no-new-privileges=true"
                    )
                }),
        );
        if unmasks(get(hc, "maskedpaths"), DEFAULT_MASKED_PATHS)
            || unmasks(get(hc, "readonlypaths"), DEFAULT_READONLY_PATHS)
        {
            self.security_opts.push("systempaths=unconfined".into());
        }
        for bind in strings(get(hc, "binds")) {
            if let Some((src, _)) = bind_source(&bind) {
                self.host_paths.push(host_path(&src));
            }
        }
        // `container:X` shares another container's namespace; `VolumesFrom` its mounts.
        for key in ["networkmode", "pidmode", "ipcmode", "cgroup"] {
            if let Some(Value::String(m)) = get(hc, key) {
                // Sliced with `get`: the mode is user text, byte 10 may fall inside a character.
                let m = m.trim();
                match (m.get(..10), m.get(10..)) {
                    (Some(p), Some(x)) if p.eq_ignore_ascii_case("container:") && !x.is_empty() => {
                        self.shared_with.push(x.to_string());
                    }
                    _ => {}
                }
            }
        }
        self.shared_with.extend(
            strings(get(hc, "volumesfrom"))
                .iter()
                .map(|v| v.split(':').next().unwrap_or("").to_string()),
        );
        if let Some(Value::Array(mounts)) = get(hc, "mounts") {
            for m in mounts {
                self.add_mount(m);
            }
        }
        if let Some(Value::Object(s)) = get(hc, "sysctls") {
            self.sysctls.extend(s.keys().cloned());
        }
    }

    /// One entry of `Mounts` (containers and services).
    fn add_mount(&mut self, m: &Value) {
        let kind = match get(m, "type") {
            Some(Value::String(t)) => t.to_ascii_lowercase(),
            _ => String::new(),
        };
        let source = match get(m, "source") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        match kind.as_str() {
            "volume" | "tmpfs" => {
                // A volume created on the fly carries its driver's options.
                if let Some(dc) = get(m, "volumeoptions").and_then(|o| get(o, "driverconfig")) {
                    self.add_volume_driver(get(dc, "name"), get(dc, "options"));
                }
            }
            // `bind`, and any other type (dockerd refuses unknown ones; `npipe`/`cluster` are
            // not for Linux hosts): a source is a host path.
            _ => {
                if !source.is_empty() {
                    self.host_paths.push(host_path(&source));
                }
                if kind != "bind" {
                    self.unsafe_volumes
                        .push(format!("mount type {kind:?} is not allowed"));
                }
            }
        }
    }

    /// A volume driver and its options, judged by [`volume_risk`].
    fn add_volume_driver(&mut self, driver: Option<&Value>, opts: Option<&Value>) {
        if let Some(risk) = volume_risk(driver, opts, &mut self.host_paths) {
            self.unsafe_volumes.push(risk);
        }
    }

    /// Precompute what predicates look at repeatedly.
    pub fn finish(mut self) -> Facts {
        self.image_names = self.images.iter().map(|i| image_names(i)).collect();
        let mut m = 0;
        for (set, bit) in [
            (self.privileged, present::PRIVILEGED),
            (!self.caps.is_empty(), present::CAPS),
            (self.devices, present::DEVICES),
            (!self.host_namespaces.is_empty(), present::HOST_NS),
            (!self.security_opts.is_empty(), present::SECURITY_OPTS),
            (!self.host_paths.is_empty(), present::HOST_PATHS),
            (!self.sysctls.is_empty(), present::SYSCTLS),
            (!self.images.is_empty(), present::IMAGES),
            (self.exec_root, present::EXEC_ROOT),
            (!self.unsafe_volumes.is_empty(), present::UNSAFE_VOLUMES),
            (!self.shared_with.is_empty(), present::SHARED),
            (!self.unseen.is_empty(), present::UNSEEN),
        ] {
            if set {
                m |= bit;
            }
        }
        self.present = m;
        self
    }

    /// Take on the risk of a container this request shares or acts on: sharing a privileged
    /// container's PID namespace or exec-ing into a container with a host bind gives what that
    /// container has. `None`: the plugin has no record of `reference` (fail closed: unseen).
    pub fn absorb(&mut self, reference: &str, risk: Option<&Risk>) {
        let Some(r) = risk else {
            if !self.unseen.iter().any(|u| u == reference) {
                self.unseen.push(reference.to_string());
            }
            return;
        };
        self.privileged |= r.privileged;
        self.devices |= r.devices;
        for (have, add) in [
            (&mut self.caps, &r.caps),
            (&mut self.security_opts, &r.security_opts),
            (&mut self.host_paths, &r.host_paths),
            (&mut self.sysctls, &r.sysctls),
            (&mut self.unsafe_volumes, &r.unsafe_volumes),
            (&mut self.unseen, &r.unseen),
        ] {
            for a in add {
                if !have.contains(a) {
                    have.push(a.clone());
                }
            }
        }
        for ns in &r.host_namespaces {
            if let Some(n) = HOST_NAMESPACES.iter().find(|n| **n == ns.as_str()) {
                if !self.host_namespaces.contains(n) {
                    self.host_namespaces.push(n);
                }
            }
        }
    }

    /// Facts of a request body for `action`.
    pub fn from_body(action: &str, body: &Value) -> Facts {
        let mut f = Facts::default();
        match action {
            "container.create" | "container.start" | "container.update" => {
                f.add_host_config(body);
                if let Some(hc) = get(body, "hostconfig") {
                    f.add_host_config(hc);
                }
                if let Some(Value::String(img)) = get(body, "image") {
                    f.images.push(img.clone());
                }
            }
            "container.exec" => {
                f.privileged = truthy(get(body, "privileged"));
                let user = match get(body, "user") {
                    Some(Value::String(u)) => u.trim().to_string(),
                    _ => String::new(),
                };
                let name = user.split(':').next().unwrap_or("");
                f.exec_root = name.is_empty() || name == "root" || name == "0";
            }
            "volume.create" => f.add_volume_driver(get(body, "driver"), get(body, "driveropts")),
            "service.create" | "service.update" => {
                let task = get(body, "tasktemplate");
                // Swarm runs tasks with no further authz request: judge what they will get.
                let nets = strings_of_targets(task.and_then(|t| get(t, "networks")))
                    .into_iter()
                    .chain(strings_of_targets(get(body, "networks")));
                for n in nets {
                    if n == "host" && !f.host_namespaces.contains(&"network") {
                        f.host_namespaces.push("network");
                    }
                }
                if let Some(t) = task {
                    // A plugin task installs a plugin with the privileges it asks for.
                    let runtime = match get(t, "runtime") {
                        Some(Value::String(r)) => r.trim().to_ascii_lowercase(),
                        _ => String::new(),
                    };
                    if runtime == "plugin" || non_empty(get(t, "pluginspec")) {
                        f.privileged = true;
                    }
                    if let Some(g) = get(t, "resources")
                        .and_then(|r| get(r, "reservations"))
                        .and_then(|r| get(r, "genericresources"))
                    {
                        f.devices |= non_empty(Some(g));
                    }
                }
                if let Some(spec) = task.and_then(|t| get(t, "containerspec")) {
                    if let Some(p) = get(spec, "privileges") {
                        if let Some(se) = get(p, "selinuxcontext") {
                            if truthy(get(se, "disable")) {
                                f.security_opts.push("label=disable".into());
                            }
                            for k in ["user", "role", "type", "level"] {
                                if let Some(Value::String(v)) = get(se, k) {
                                    if !v.is_empty() {
                                        f.security_opts
                                            .push(format!("label={k}:{}", v.to_ascii_lowercase()));
                                    }
                                }
                            }
                        }
                        for (k, default) in [("seccomp", "seccomp"), ("apparmor", "apparmor")] {
                            let mode = get(p, k)
                                .and_then(|s| get(s, "mode"))
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_ascii_lowercase();
                            match mode.as_str() {
                                "" | "default" => {}
                                "unconfined" | "disabled" => {
                                    f.security_opts.push(format!("{default}=unconfined"))
                                }
                                _ => f.security_opts.push(format!("{default}=custom")),
                            }
                        }
                        if non_empty(get(p, "credentialspec")) {
                            f.security_opts.push("credentialspec=set".into());
                        }
                    }
                    if let Some(Value::String(img)) = get(spec, "image") {
                        f.images.push(img.clone());
                    }
                    if let Some(Value::Array(mounts)) = get(spec, "mounts") {
                        for m in mounts {
                            f.add_mount(m);
                        }
                    }
                    f.caps.extend(
                        strings(get(spec, "capabilityadd"))
                            .iter()
                            .map(|c| cap_name(c)),
                    );
                    if let Some(Value::Object(s)) = get(spec, "sysctls") {
                        f.sysctls.extend(s.keys().cloned());
                    }
                }
            }
            _ => {}
        }
        f.finish()
    }
}

/// `Target` of each entry of a service's `Networks`.
fn strings_of_targets(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|n| get(n, "target").and_then(Value::as_str))
            .map(|t| t.trim().to_string())
            .collect(),
        _ => Vec::new(),
    }
}
