//! One judgement of a body against the profile: field by field, unknown non-zero fields refused,
//! shared containers judged by their records.

use super::*;

/// One judgement: the profile and the container records it may consult.
pub(super) struct Judge<'a> {
    pub(super) p: &'a Profile,
    pub(super) containers: Option<&'a dyn Containers>,
    pub(super) host: Option<&'a dyn HostFs>,
}

impl std::ops::Deref for Judge<'_> {
    type Target = Profile;
    fn deref(&self) -> &Profile {
        self.p
    }
}

impl Judge<'_> {
    /// Another container shared or acted on: known, and itself within the profile.
    pub(super) fn shared(&self, what: &str, reference: &str) -> Verdict {
        match self.containers.and_then(|c| c.lookup(reference)) {
            None => Err(format!(
                "{what} ({reference}) is unknown to the authorization plugin (inspect it first, or ask an administrator), refused under the security profile"
            )),
            Some(r) => self.risk_ok(&r).map_err(|why| {
                format!("{what} ({reference}) is not allowed under the security profile: {why}")
            }),
        }
    }

    pub(super) fn judge(&self, action: &str, body: Option<&Value>) -> Verdict {
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

    pub(super) fn fields(&self, at: &str, v: &Value, table: &[(&str, Check)]) -> Verdict {
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

    pub(super) fn host_config(&self, at: &str, v: &Value) -> Verdict {
        self.fields(at, v, HOST_CONFIG_FIELDS)
    }

    pub(super) fn check_field(&self, at: &str, k: &str, c: Check, v: &Value) -> Verdict {
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
    pub(super) fn own(&self, here: &str, k: &str, v: &Value) -> Verdict {
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

    pub(super) fn networking(&self, here: &str, v: &Value) -> Verdict {
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

    pub(super) fn caps(&self, here: &str, v: &Value) -> Verdict {
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
    pub(super) fn host_bind(&self, here: &str, path: &str, read_only: bool) -> Verdict {
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

    pub(super) fn binds(&self, here: &str, v: &Value) -> Verdict {
        for b in body::strings(Some(v)) {
            if let Some((src, opts)) = body::bind_source(&b) {
                let ro = opts.split(',').any(|o| o == "ro");
                self.host_bind(here, &src, ro)?;
            }
        }
        Ok(())
    }

    pub(super) fn mounts(&self, here: &str, v: &Value) -> Verdict {
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

    pub(super) fn privileges(&self, here: &str, v: &Value) -> Verdict {
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

pub(super) fn lookup(table: &[(&str, Check)], k: &str) -> Option<Check> {
    table.iter().find(|(n, _)| *n == k).map(|(_, c)| *c)
}

pub(super) fn join(at: &str, k: &str) -> String {
    if at.is_empty() {
        k.to_string()
    } else {
        format!("{at}.{k}")
    }
}

pub(super) fn display(here: &str) -> String {
    if here.is_empty() {
        "the body".into()
    } else {
        format!("field {here}")
    }
}

pub(super) fn unknown(at: &str, k: &str) -> String {
    format!(
        "{} is not known to this plugin and is refused under the security profile (unknown fields fail closed)",
        display(&join(at, k))
    )
}

/// `host` shares a host namespace: refused. (`container:X` is judged against X's record.)
pub(super) fn namespace_mode(here: &str, v: &Value) -> Verdict {
    let m = str_of(Some(v)).trim();
    if m.eq_ignore_ascii_case("host") {
        return Err(format!(
            "{}: host namespaces are not allowed under the security profile",
            display(here)
        ));
    }
    Ok(())
}

pub(super) fn security_opts(here: &str, v: &Value) -> Verdict {
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

pub(super) fn sysctls(here: &str, v: &Value) -> Verdict {
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

pub(super) fn system_paths(here: &str, v: &Value, defaults: &[&str]) -> Verdict {
    if body::unmasks(Some(v), defaults) {
        Err(format!(
            "{}: a value other than the defaults unmasks kernel paths",
            display(here)
        ))
    } else {
        Ok(())
    }
}
