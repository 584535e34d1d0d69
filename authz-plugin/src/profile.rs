//! The default-deny security profile: every security-relevant field of a container create,
//! update, exec, legacy start and service spec must hold a value the profile allows, and a field
//! this plugin does not know that holds a non-zero value is refused (future API fields fail
//! closed). Modelled on the Kubernetes Pod Security Standards: `baseline` refuses the known
//! privilege escalations, `restricted` also refuses added capabilities other than
//! `NET_BIND_SERVICE`. Under both, host binds (resolved on the host, [`crate::hostfs`]) must lie
//! under an allowed root and be read-only unless their root is marked writable.
//!
//! Input is the body as [`crate::body::parse_strict`] decodes it: struct field names folded the
//! way Go's `encoding/json` matches them, map keys as sent. Pure: no files, no state.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::body::{self, path_under};
use crate::containers::{Containers, Risk};
use crate::hostfs::{self, HostFs};

/// What the profile may consult besides the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen<'a> {
    /// The containers the plugin has seen.
    pub containers: Option<&'a dyn Containers>,
    /// The host's filesystem, to resolve bind sources (`None`: judged lexically).
    pub host: Option<&'a dyn HostFs>,
}

/// Which profile a policy enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// No profile: only the rules decide.
    #[default]
    None,
    /// Known privilege escalations refused, unknown fields refused.
    Baseline,
    /// Baseline, plus only `NET_BIND_SERVICE` may be added.
    Restricted,
}

/// The profile and its settings, as compiled from the policy.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// The level.
    pub level: Level,
    /// Host path roots that binds may name (cleaned); empty: no host binds at all.
    pub bind_roots: Vec<String>,
    /// Of those, the roots that may be bound writable.
    pub writable_roots: Vec<String>,
}

/// Capabilities in Docker's default set (moby `oci/caps/defaults.go` `DefaultCapabilities`):
/// adding one of them changes nothing.
const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Sysctls the Pod Security Standards (baseline) call safe: namespaced and harmless.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// What a known field may hold under a profile.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// Anything: the field cannot raise privilege (names, commands, limits, labels...).
    Any,
    /// Must be false, null or absent.
    False,
    /// Must be empty (zero value).
    Empty,
    /// Checked by its own function (see [`Profile::check_field`]).
    Own,
}

/// Fields of moby's `container.Config` (API 1.45), folded.
const CONFIG_FIELDS: &[(&str, Check)] = &[
    ("hostname", Check::Any),
    ("domainname", Check::Any),
    ("user", Check::Any),
    ("attachstdin", Check::Any),
    ("attachstdout", Check::Any),
    ("attachstderr", Check::Any),
    ("exposedports", Check::Any),
    ("tty", Check::Any),
    ("openstdin", Check::Any),
    ("stdinonce", Check::Any),
    ("env", Check::Any),
    ("cmd", Check::Any),
    ("healthcheck", Check::Any),
    ("argsescaped", Check::Any),
    ("image", Check::Any),
    ("volumes", Check::Any),
    ("workingdir", Check::Any),
    ("entrypoint", Check::Any),
    ("networkdisabled", Check::Any),
    ("macaddress", Check::Any),
    ("onbuild", Check::Any),
    ("labels", Check::Any),
    ("stopsignal", Check::Any),
    ("stoptimeout", Check::Any),
    ("shell", Check::Any),
    ("hostconfig", Check::Own),
    ("networkingconfig", Check::Own),
];

/// Fields of moby's `container.HostConfig` with its embedded `Resources` (API 1.45), folded.
const HOST_CONFIG_FIELDS: &[(&str, Check)] = &[
    ("binds", Check::Own),
    ("containeridfile", Check::Any),
    ("logconfig", Check::Any),
    ("networkmode", Check::Own),
    ("portbindings", Check::Any),
    ("restartpolicy", Check::Any),
    ("autoremove", Check::Any),
    ("volumedriver", Check::Any),
    ("volumesfrom", Check::Own),
    ("consolesize", Check::Any),
    ("annotations", Check::Empty),
    ("capadd", Check::Own),
    ("capdrop", Check::Any),
    ("capabilities", Check::Own),
    ("cgroupnsmode", Check::Own),
    ("dns", Check::Any),
    ("dnsoptions", Check::Any),
    ("dnssearch", Check::Any),
    ("extrahosts", Check::Any),
    ("groupadd", Check::Any),
    ("ipcmode", Check::Own),
    ("cgroup", Check::Own),
    ("links", Check::Any),
    ("oomscoreadj", Check::Own),
    ("pidmode", Check::Own),
    ("privileged", Check::False),
    ("publishallports", Check::Any),
    ("readonlyrootfs", Check::Any),
    ("securityopt", Check::Own),
    ("storageopt", Check::Any),
    ("tmpfs", Check::Any),
    ("utsmode", Check::Own),
    ("usernsmode", Check::Own),
    ("shmsize", Check::Any),
    ("sysctls", Check::Own),
    ("runtime", Check::Own),
    ("isolation", Check::Own),
    ("mounts", Check::Own),
    ("maskedpaths", Check::Own),
    ("readonlypaths", Check::Own),
    ("init", Check::Any),
    // Resources.
    ("cpushares", Check::Any),
    ("memory", Check::Any),
    ("nanocpus", Check::Any),
    ("cgroupparent", Check::Empty),
    ("blkioweight", Check::Any),
    ("blkioweightdevice", Check::Any),
    ("blkiodevicereadbps", Check::Any),
    ("blkiodevicewritebps", Check::Any),
    ("blkiodevicereadiops", Check::Any),
    ("blkiodevicewriteiops", Check::Any),
    ("cpuperiod", Check::Any),
    ("cpuquota", Check::Any),
    ("cpurealtimeperiod", Check::Any),
    ("cpurealtimeruntime", Check::Any),
    ("cpusetcpus", Check::Any),
    ("cpusetmems", Check::Any),
    ("devices", Check::Empty),
    ("devicecgrouprules", Check::Empty),
    ("devicerequests", Check::Empty),
    ("kernelmemory", Check::Any),
    ("kernelmemorytcp", Check::Any),
    ("memoryreservation", Check::Any),
    ("memoryswap", Check::Any),
    ("memoryswappiness", Check::Any),
    ("oomkilldisable", Check::False),
    ("pidslimit", Check::Any),
    ("ulimits", Check::Any),
    ("cpucount", Check::Any),
    ("cpupercent", Check::Any),
    ("iomaximumiops", Check::Any),
    ("iomaximumbandwidth", Check::Any),
];

/// Fields of moby's `container.ExecOptions` (exec create body), folded.
const EXEC_FIELDS: &[(&str, Check)] = &[
    ("user", Check::Any),
    ("privileged", Check::False),
    ("tty", Check::Any),
    ("consolesize", Check::Any),
    ("attachstdin", Check::Any),
    ("attachstderr", Check::Any),
    ("attachstdout", Check::Any),
    ("detach", Check::Any),
    ("detachkeys", Check::Any),
    ("env", Check::Any),
    ("workingdir", Check::Any),
    ("cmd", Check::Any),
];

/// Fields of `swarm.ContainerSpec`, folded.
const CONTAINER_SPEC_FIELDS: &[(&str, Check)] = &[
    ("image", Check::Any),
    ("labels", Check::Any),
    ("command", Check::Any),
    ("args", Check::Any),
    ("hostname", Check::Any),
    ("env", Check::Any),
    ("dir", Check::Any),
    ("user", Check::Any),
    ("groups", Check::Any),
    ("privileges", Check::Own),
    ("init", Check::Any),
    ("stopsignal", Check::Any),
    ("tty", Check::Any),
    ("openstdin", Check::Any),
    ("readonly", Check::Any),
    ("mounts", Check::Own),
    ("stopgraceperiod", Check::Any),
    ("healthcheck", Check::Any),
    ("hosts", Check::Any),
    ("dnsconfig", Check::Any),
    ("secrets", Check::Any),
    ("configs", Check::Any),
    ("isolation", Check::Own),
    ("sysctls", Check::Own),
    ("capabilityadd", Check::Own),
    ("capabilitydrop", Check::Any),
    ("ulimits", Check::Any),
    ("oomscoreadj", Check::Own),
];

/// Fields of `swarm.TaskSpec`, folded.
const TASK_SPEC_FIELDS: &[(&str, Check)] = &[
    ("containerspec", Check::Own),
    ("pluginspec", Check::Empty),
    ("networkattachmentspec", Check::Empty),
    ("resources", Check::Own),
    ("restartpolicy", Check::Any),
    ("placement", Check::Any),
    ("networks", Check::Own),
    ("logdriver", Check::Any),
    ("forceupdate", Check::Any),
    ("runtime", Check::Own),
];

/// Fields of `swarm.ServiceSpec`, folded.
const SERVICE_SPEC_FIELDS: &[(&str, Check)] = &[
    ("name", Check::Any),
    ("labels", Check::Any),
    ("tasktemplate", Check::Own),
    ("mode", Check::Any),
    ("updateconfig", Check::Any),
    ("rollbackconfig", Check::Any),
    ("networks", Check::Own),
    ("endpointspec", Check::Any),
];

/// Does a JSON value hold Go's zero value (absent, null, false, 0, "", [], {})?
pub fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn obj(v: &Value) -> Option<&Map<String, Value>> {
    v.as_object()
}

fn str_of(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or("")
}

type Verdict = Result<(), String>;

impl Profile {
    /// Whether a profile is in force.
    pub fn active(&self) -> bool {
        self.level != Level::None
    }

    /// Judge the body of `action`; `Err` names the first field the profile refuses. Actions the
    /// profile does not cover pass. A covered action without a body passes only when the body
    /// could not carry anything (the caller denies bodies that were sent but not forwarded).
    pub fn judge(&self, action: &str, body: Option<&Value>, seen: &Seen<'_>) -> Verdict {
        Judge {
            p: self,
            containers: seen.containers,
            host: seen.host,
        }
        .judge(action, body)
    }

    /// Judge the container an exec, attach or archive request acts on: its recorded facts must
    /// satisfy the profile, and an unseen container fails closed.
    pub fn judge_target(&self, reference: &str, seen: &Seen<'_>) -> Verdict {
        if !self.active() {
            return Ok(());
        }
        Judge {
            p: self,
            containers: seen.containers,
            host: seen.host,
        }
        .shared("the container acted on", reference)
    }

    /// Whether a container with these facts may be shared or acted on under the profile.
    fn risk_ok(&self, r: &Risk) -> Result<(), String> {
        if r.privileged {
            return Err("it is privileged".into());
        }
        if r.devices {
            return Err("it has host devices".into());
        }
        if let Some(ns) = r.host_namespaces.first() {
            return Err(format!("it uses the host {ns} namespace"));
        }
        if let Some(c) = r.caps.iter().find(|c| !self.cap_ok(c)) {
            return Err(format!("it has capability CAP_{c}"));
        }
        if let Some(o) = r
            .security_opts
            .iter()
            .find(|o| !o.starts_with("label=level:"))
        {
            return Err(format!("it runs with {o}"));
        }
        if let Some(p) = r
            .host_paths
            .iter()
            .find(|p| !self.bind_roots.iter().any(|root| path_under(p, root)))
        {
            return Err(format!("it binds host path {p:?}"));
        }
        if let Some(s) = r
            .sysctls
            .iter()
            .find(|s| !SAFE_SYSCTLS.contains(&s.as_str()))
        {
            return Err(format!("it sets sysctl {s}"));
        }
        if let Some(v) = r.unsafe_volumes.first() {
            return Err(format!("it has an unsafe volume ({v})"));
        }
        if let Some(u) = r.unseen.first() {
            return Err(format!(
                "it shares container {u:?}, of which the plugin has no record"
            ));
        }
        Ok(())
    }

    fn cap_ok(&self, c: &str) -> bool {
        match self.level {
            Level::Restricted => c == "NET_BIND_SERVICE",
            _ => DEFAULT_CAPS.contains(&c),
        }
    }
}

/// One judgement: the profile and the container records it may consult.
struct Judge<'a> {
    p: &'a Profile,
    containers: Option<&'a dyn Containers>,
    host: Option<&'a dyn HostFs>,
}

impl std::ops::Deref for Judge<'_> {
    type Target = Profile;
    fn deref(&self) -> &Profile {
        self.p
    }
}

impl Judge<'_> {
    /// Another container shared or acted on: known, and itself within the profile.
    fn shared(&self, what: &str, reference: &str) -> Verdict {
        match self.containers.and_then(|c| c.lookup(reference)) {
            None => Err(format!(
                "{what} ({reference}) is unknown to the authorization plugin (inspect it first, or ask an administrator), refused under the security profile"
            )),
            Some(r) => self.risk_ok(&r).map_err(|why| {
                format!("{what} ({reference}) is not allowed under the security profile: {why}")
            }),
        }
    }

    fn judge(&self, action: &str, body: Option<&Value>) -> Verdict {
        if !self.active() {
            return Ok(());
        }
        let Some(body) = body else {
            return Ok(());
        };
        match action {
            "container.create" => {
                let Some(top) = obj(body) else {
                    return Err("the create body is not a JSON object".into());
                };
                // dockerd's ContainerConfigWrapper embeds both Config and the deprecated
                // top-level HostConfig fields: each top-level key is one or the other.
                for (k, v) in top {
                    if let Some(c) = lookup(CONFIG_FIELDS, k) {
                        self.check_field("", k, c, v)?;
                    } else if let Some(c) = lookup(HOST_CONFIG_FIELDS, k) {
                        self.check_field("", k, c, v)?;
                    } else if !is_zero(v) {
                        return Err(unknown("", k));
                    }
                }
                Ok(())
            }
            // Legacy start (API < 1.24) and update carry host config fields at the top level.
            "container.start" | "container.update" => self.host_config("", body),
            "container.exec" => self.fields("", body, EXEC_FIELDS),
            "service.create" | "service.update" => self.fields("", body, SERVICE_SPEC_FIELDS),
            _ => Ok(()),
        }
    }

    fn fields(&self, at: &str, v: &Value, table: &[(&str, Check)]) -> Verdict {
        let Some(m) = obj(v) else {
            return if v.is_null() {
                Ok(())
            } else {
                Err(format!("{} is not an object", display(at)))
            };
        };
        for (k, v) in m {
            match lookup(table, k) {
                Some(c) => self.check_field(at, k, c, v)?,
                None if !is_zero(v) => return Err(unknown(at, k)),
                None => {}
            }
        }
        Ok(())
    }

    fn host_config(&self, at: &str, v: &Value) -> Verdict {
        self.fields(at, v, HOST_CONFIG_FIELDS)
    }

    fn check_field(&self, at: &str, k: &str, c: Check, v: &Value) -> Verdict {
        let here = join(at, k);
        match c {
            Check::Any => Ok(()),
            Check::False => match v {
                Value::Null | Value::Bool(false) => Ok(()),
                _ => Err(format!(
                    "{} must be false under the security profile",
                    display(&here)
                )),
            },
            Check::Empty => {
                if is_zero(v) {
                    Ok(())
                } else {
                    Err(format!(
                        "{} is not allowed under the security profile",
                        display(&here)
                    ))
                }
            }
            Check::Own => self.own(&here, k, v),
        }
    }

    /// Fields with their own rules.
    fn own(&self, here: &str, k: &str, v: &Value) -> Verdict {
        match k {
            "hostconfig" => self.host_config(here, v),
            "networkingconfig" => self.networking(here, v),
            "binds" => self.binds(here, v),
            "mounts" => self.mounts(here, v),
            "capadd" | "capabilities" | "capabilityadd" => self.caps(here, v),
            "networkmode" | "pidmode" | "ipcmode" | "utsmode" | "usernsmode" | "cgroupnsmode"
            | "cgroup" => {
                namespace_mode(here, v)?;
                let m = str_of(Some(v)).trim();
                match m.get(..10) {
                    Some(p) if p.eq_ignore_ascii_case("container:") => {
                        return self.shared(&format!("{} container", display(here)), &m[10..]);
                    }
                    _ => {}
                }
                // Modes other than network names take a fixed set of values (moby
                // `container.PidMode.Valid` and siblings): anything else is refused by dockerd,
                // and by the profile, which judges only what it understands.
                let known: &[&str] = match k {
                    "pidmode" | "utsmode" | "usernsmode" => &[""],
                    "ipcmode" => &["", "private", "shareable", "none"],
                    "cgroupnsmode" => &["", "private"],
                    "cgroup" => &[""],
                    _ => return Ok(()),
                };
                if known.contains(&m) {
                    Ok(())
                } else {
                    Err(format!(
                        "{}: mode {m:?} is not known to the security profile",
                        display(here)
                    ))
                }
            }
            "volumesfrom" => {
                for entry in body::strings(Some(v)) {
                    let x = entry.split(':').next().unwrap_or("");
                    self.shared(&display(here), x)?;
                }
                Ok(())
            }
            "securityopt" => security_opts(here, v),
            "sysctls" => sysctls(here, v),
            "runtime" => match str_of(Some(v)) {
                // The service TaskSpec runtime "container" is the normal one; "plugin" installs
                // a plugin with whatever privileges it asks for.
                "" | "runc" | "io.containerd.runc.v2" | "container" => Ok(()),
                other => Err(format!(
                    "{} {other:?} is not allowed under the security profile",
                    display(here)
                )),
            },
            "isolation" => match str_of(Some(v)) {
                "" | "default" => Ok(()),
                other => Err(format!("{} {other:?} is not allowed", display(here))),
            },
            "oomscoreadj" => match v.as_i64() {
                Some(n) if n < 0 => Err(format!(
                    "{} below 0 is not allowed under the security profile",
                    display(here)
                )),
                _ => Ok(()),
            },
            "maskedpaths" => system_paths(here, v, body::DEFAULT_MASKED_PATHS),
            "readonlypaths" => system_paths(here, v, body::DEFAULT_READONLY_PATHS),
            "privileges" => self.privileges(here, v),
            "containerspec" => self.fields(here, v, CONTAINER_SPEC_FIELDS),
            "tasktemplate" => self.fields(here, v, TASK_SPEC_FIELDS),
            "resources" => {
                // Limits and reservations only; generic resources name host devices.
                let generic = v
                    .get("reservations")
                    .and_then(|r| r.get("genericresources"));
                match generic {
                    Some(g) if !is_zero(g) => Err(format!(
                        "{}.Reservations.GenericResources is not allowed under the security profile",
                        display(here)
                    )),
                    _ => Ok(()),
                }
            }
            "networks" => {
                for n in v.as_array().map(Vec::as_slice).unwrap_or(&[]) {
                    let target = str_of(n.get("target"));
                    if target == "host" {
                        return Err(format!(
                            "{} naming the host network is not allowed",
                            display(here)
                        ));
                    }
                }
                Ok(())
            }
            _ => Err(unknown("", here)),
        }
    }

    fn networking(&self, here: &str, v: &Value) -> Verdict {
        let eps = v.get("endpointsconfig").and_then(Value::as_object);
        for name in eps
            .map(|m| m.keys().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if name == "host" {
                return Err(format!(
                    "{}.EndpointsConfig naming the host network is not allowed",
                    display(here)
                ));
            }
        }
        Ok(())
    }

    fn caps(&self, here: &str, v: &Value) -> Verdict {
        for raw in body::strings(Some(v)) {
            let c = body::cap_name(&raw);
            if !self.cap_ok(&c) {
                return Err(format!(
                    "{}: capability {raw:?} (CAP_{c}) is not allowed under the security profile",
                    display(here)
                ));
            }
        }
        Ok(())
    }

    /// A host path bound into a container: under an allowed root, read-only unless writable.
    /// Judged on the path the kernel will bind (links resolved on the host when the plugin can
    /// see it); roots are bound read-only unless the policy marks them writable.
    fn host_bind(&self, here: &str, path: &str, read_only: bool) -> Verdict {
        let written = body::host_path(path);
        let p = match self.host {
            Some(h) => hostfs::resolve(h, &written)
                .map_err(|why| format!("{}: bind source {written:?}: {why}", display(here)))?,
            None => written.clone(),
        };
        let shown = if p == written {
            format!("{p:?}")
        } else {
            format!("{written:?} (which resolves to {p:?} on the host)")
        };
        let root = self.bind_roots.iter().find(|r| path_under(&p, r));
        match root {
            None => Err(format!(
                "{}: bind of host path {shown} is outside the allowed roots",
                display(here)
            )),
            Some(_) if read_only => Ok(()),
            Some(_) if self.writable_roots.iter().any(|r| path_under(&p, r)) => Ok(()),
            Some(_) => Err(format!(
                "{}: bind of host path {shown} must be read-only (its root is not writable)",
                display(here)
            )),
        }
    }

    fn binds(&self, here: &str, v: &Value) -> Verdict {
        for b in body::strings(Some(v)) {
            if let Some((src, opts)) = body::bind_source(&b) {
                let ro = opts.split(',').any(|o| o == "ro");
                self.host_bind(here, &src, ro)?;
            }
        }
        Ok(())
    }

    fn mounts(&self, here: &str, v: &Value) -> Verdict {
        for m in v.as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let kind = str_of(m.get("type"));
            let ro = matches!(m.get("readonly"), Some(Value::Bool(true)));
            match kind {
                "volume" => {
                    let dc = m.get("volumeoptions").and_then(|o| o.get("driverconfig"));
                    if let Some(dc) = dc {
                        let mut paths = Vec::new();
                        if let Some(risk) =
                            body::volume_risk(dc.get("name"), dc.get("options"), &mut paths)
                        {
                            return Err(format!("{}: {risk}", display(here)));
                        }
                        for p in paths {
                            self.host_bind(here, &p, ro)?;
                        }
                    }
                }
                "tmpfs" => {}
                "bind" => self.host_bind(here, str_of(m.get("source")), ro)?,
                other => {
                    return Err(format!(
                        "{}: mount type {other:?} is not allowed under the security profile",
                        display(here)
                    ))
                }
            }
        }
        Ok(())
    }

    fn privileges(&self, here: &str, v: &Value) -> Verdict {
        let Some(m) = obj(v) else {
            return Ok(());
        };
        for (k, v) in m {
            let bad = match k.as_str() {
                "selinuxcontext" => !is_zero(v),
                "credentialspec" => !is_zero(v),
                "seccomp" => !matches!(str_of(v.get("mode")), "" | "default"),
                "apparmor" => !matches!(str_of(v.get("mode")), "" | "default"),
                "nonewprivileges" => false,
                _ => !is_zero(v),
            };
            if bad {
                return Err(format!(
                    "{}.{k} is not allowed under the security profile",
                    display(here)
                ));
            }
        }
        Ok(())
    }
}

fn lookup(table: &[(&str, Check)], k: &str) -> Option<Check> {
    table.iter().find(|(n, _)| *n == k).map(|(_, c)| *c)
}

fn join(at: &str, k: &str) -> String {
    if at.is_empty() {
        k.to_string()
    } else {
        format!("{at}.{k}")
    }
}

fn display(here: &str) -> String {
    if here.is_empty() {
        "the body".into()
    } else {
        format!("field {here}")
    }
}

fn unknown(at: &str, k: &str) -> String {
    format!(
        "{} is not known to this plugin and is refused under the security profile (unknown fields fail closed)",
        display(&join(at, k))
    )
}

/// `host` shares a host namespace: refused. (`container:X` is judged against X's record.)
fn namespace_mode(here: &str, v: &Value) -> Verdict {
    let m = str_of(Some(v)).trim();
    if m.eq_ignore_ascii_case("host") {
        return Err(format!(
            "{}: host namespaces are not allowed under the security profile",
            display(here)
        ));
    }
    Ok(())
}

fn security_opts(here: &str, v: &Value) -> Verdict {
    for o in body::strings(Some(v)) {
        let n = body::security_opt(&o);
        let ok = matches!(
            n.as_str(),
            "no-new-privileges=true" | "seccomp=default" | "apparmor=default"
        ) || n.starts_with("label=level:");
        if !ok {
            return Err(format!(
                "{}: security option {o:?} is not allowed under the security profile",
                display(here)
            ));
        }
    }
    Ok(())
}

fn sysctls(here: &str, v: &Value) -> Verdict {
    if let Some(m) = obj(v) {
        for k in m.keys() {
            if !SAFE_SYSCTLS.contains(&k.as_str()) {
                return Err(format!(
                    "{}: sysctl {k:?} is not allowed under the security profile",
                    display(here)
                ));
            }
        }
    } else if !is_zero(v) {
        return Err(format!("{} is not an object", display(here)));
    }
    Ok(())
}

fn system_paths(here: &str, v: &Value, defaults: &[&str]) -> Verdict {
    if body::unmasks(Some(v), defaults) {
        Err(format!(
            "{}: a value other than the defaults unmasks kernel paths",
            display(here)
        ))
    } else {
        Ok(())
    }
}
