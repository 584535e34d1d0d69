//! From a policy text to a [`Policy`]: TOML parsing, validation of every rule (all problems
//! reported with their line), and the candidate index by action.

use super::*;

impl Policy {
    /// Parse and compile `text`; every problem found is reported with its line.
    pub fn compile(text: &str) -> Result<Policy, Vec<PolicyError>> {
        let spec: PolicySpec = toml::from_str(text).map_err(|e| {
            let (line, column) = match e.span() {
                Some(s) => {
                    let (l, c) = line_col(text, s.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            // Some toml errors carry no message of their own (found by fuzzing: a control
            // character inside a comment); never report an empty reason.
            let message = match e.message().trim() {
                "" => "invalid TOML (a control character, or a malformed token)".to_string(),
                m => m.to_string(),
            };
            vec![PolicyError {
                line,
                column,
                message,
            }]
        })?;
        let mut errors = Vec::new();
        let known: Vec<&'static str> = route::all_actions();
        let mut names = BTreeSet::new();
        let mut rules = Vec::new();
        for spanned in &spec.rules {
            let (line, _) = line_col(text, spanned.span().start);
            let r = spanned.get_ref();
            let mut err = |m: String| {
                errors.push(PolicyError {
                    line: Some(line),
                    column: None,
                    message: format!("rule {:?}: {m}", r.name),
                })
            };
            if r.name.trim().is_empty() {
                err("name must not be empty".into());
            }
            if !names.insert(r.name.clone()) {
                err("duplicate rule name".into());
            }
            if let Some(actions) = &r.actions {
                for a in actions {
                    if !known.iter().any(|k| glob(a, k)) {
                        err(format!(
                            "unknown action {a:?} (known: {})",
                            known.join(", ")
                        ));
                    }
                }
            }
            let methods = r.methods.as_ref().map(|m| {
                m.iter()
                    .map(|x| x.trim().to_ascii_uppercase())
                    .collect::<Vec<_>>()
            });
            if let Some(ms) = &methods {
                for m in ms {
                    if !["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
                        .contains(&m.as_str())
                    {
                        err(format!("unknown method {m:?}"));
                    }
                }
            }
            let mut preds = Vec::new();
            if let Some(b) = r.privileged {
                preds.push(Pred::Privileged(b));
            }
            if let Some(c) = &r.cap_add {
                let caps: Vec<String> = c
                    .iter()
                    .map(|x| {
                        let up = x.trim().to_ascii_uppercase();
                        up.strip_prefix("CAP_").unwrap_or(&up).to_string()
                    })
                    .collect();
                preds.push(Pred::CapAdd(caps));
            }
            if let Some(b) = r.devices {
                preds.push(Pred::Devices(b));
            }
            if let Some(ns) = &r.host_namespaces {
                for n in ns {
                    if !["network", "pid", "ipc", "uts", "userns", "cgroup", "*"]
                        .contains(&n.as_str())
                    {
                        err(format!(
                            "unknown host namespace {n:?} (network, pid, ipc, uts, userns, cgroup, *)"
                        ));
                    }
                }
                preds.push(Pred::HostNs(ns.clone()));
            }
            if let Some(o) = &r.security_opt {
                preds.push(Pred::SecurityOpt(
                    o.iter()
                        .map(|x| {
                            let (k, v) = x
                                .split_once('=')
                                .or_else(|| x.split_once(':'))
                                .unwrap_or((x, ""));
                            if v.is_empty() && !x.contains(['=', ':']) {
                                k.to_ascii_lowercase()
                            } else {
                                format!("{}={}", k.to_ascii_lowercase(), v.to_ascii_lowercase())
                            }
                        })
                        .collect(),
                ));
            }
            for (list, under) in [(&r.host_path_under, true), (&r.host_path_outside, false)] {
                if let Some(ps) = list {
                    let mut cleaned = Vec::new();
                    for p in ps {
                        if !p.starts_with('/') {
                            err(format!("host path {p:?} must be absolute"));
                        }
                        cleaned.push(clean_path(p));
                    }
                    preds.push(if under {
                        Pred::HostPathUnder(cleaned)
                    } else {
                        Pred::HostPathOutside(cleaned)
                    });
                }
            }
            if let Some(s) = &r.sysctls {
                preds.push(Pred::Sysctls(s.clone()));
            }
            if let Some(i) = &r.image_in {
                preds.push(Pred::ImageIn(i.clone()));
            }
            if let Some(i) = &r.image_not_in {
                preds.push(Pred::ImageNotIn(i.clone()));
            }
            if let Some(b) = r.exec_root {
                preds.push(Pred::ExecRoot(b));
            }
            if let Some(b) = r.unsafe_volume {
                preds.push(Pred::UnsafeVolume(b));
            }
            if let Some(b) = r.shares_container {
                preds.push(Pred::SharesContainer(b));
            }
            if let Some(b) = r.unseen_container {
                preds.push(Pred::Unseen(b));
            }
            if r.profile_exempt && r.effect != Effect::Allow {
                err("profile_exempt is only meaningful on an allow rule".into());
            }
            let message = r.message.clone().unwrap_or_else(|| match r.effect {
                Effect::Deny => format!("denied by rule {}", r.name),
                Effect::Allow => String::new(),
            });
            rules.push(Rule {
                name: r.name.clone(),
                effect: r.effect,
                message,
                phase: r.phase,
                users: r.users.clone(),
                methods,
                paths: r.paths.clone(),
                query: r.query.clone(),
                preds,
                profile_exempt: r.profile_exempt,
                hits: AtomicU64::new(0),
            });
        }
        let mut roots = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|p| {
                    if !p.starts_with('/') {
                        errors.push(PolicyError {
                            line: None,
                            column: None,
                            message: format!("bind root {p:?} must be absolute"),
                        });
                    }
                    clean_path(p)
                })
                .collect()
        };
        let profile = Profile {
            level: spec.profile,
            bind_roots: roots(&spec.bind_roots),
            writable_roots: roots(&spec.writable_bind_roots),
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        // Index: the rules that can match each action, honouring `actions` and the actions each
        // predicate applies to. Evaluation then never looks at rules for other actions.
        // Rules whose `methods` cannot be the action's method, or whose `paths` cannot match the
        // fixed path of a parameterless route, are left out too; so are `users` rules from the
        // list used for requests without a user (every request on the unix socket).
        let mut request_index: Index = HashMap::new();
        let mut response_index: Index = HashMap::new();
        for &action in &known {
            let methods = route::methods_of(action);
            let fixed_path = route::static_path(action);
            for (i, (rule, spanned)) in rules.iter().zip(&spec.rules).enumerate() {
                let spec = spanned.get_ref();
                let listed = spec
                    .actions
                    .as_ref()
                    .is_none_or(|a| a.iter().any(|g| glob(g, action)));
                let applicable = rule.preds.iter().all(|p| p.actions().contains(&action));
                let method_ok = match (&rule.methods, &methods) {
                    (Some(want), Some(have)) => want.iter().any(|m| have.contains(&m.as_str())),
                    _ => true,
                };
                let path_ok = match (&rule.paths, fixed_path) {
                    (Some(globs), Some(p)) => any_glob(globs, p),
                    _ => true,
                };
                if listed && applicable && method_ok && path_ok {
                    let index = match rule.phase {
                        Phase::Request => &mut request_index,
                        Phase::Response => &mut response_index,
                    };
                    let cand = Cand {
                        needs: rule.preds.iter().fold(0, |m, p| m | p.needs()),
                        has_preds: !rule.preds.is_empty(),
                        rule: u32::try_from(i).unwrap_or(u32::MAX),
                    };
                    let lists = index.entry(action).or_default();
                    if rule.users.is_none() {
                        lists[0].push(cand);
                    }
                    lists[1].push(cand);
                }
            }
        }
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Ok(Policy {
            hash: format!("sha256:{hex}"),
            default: spec.default,
            default_message: spec
                .default_message
                .unwrap_or_else(|| "denied by the default of the policy".into()),
            allow_unknown_routes: spec.allow_unknown_routes,
            audit: spec.audit.unwrap_or(true),
            rules,
            request_index,
            response_index,
            builtin_hits: BUILTINS.iter().map(|b| (*b, AtomicU64::new(0))).collect(),
            placeholder: None,
            profile,
        })
    }

    /// The stand-in while no valid policy is loaded: deny everything, saying why.
    pub fn deny_all(reason: &str) -> Policy {
        Policy {
            hash: "none".into(),
            default: Effect::Deny,
            default_message: format!("no valid authorization policy is loaded ({reason})"),
            allow_unknown_routes: false,
            audit: true,
            rules: Vec::new(),
            request_index: HashMap::new(),
            response_index: HashMap::new(),
            builtin_hits: BUILTINS.iter().map(|b| (*b, AtomicU64::new(0))).collect(),
            placeholder: Some(reason.to_string()),
            profile: Profile::default(),
        }
    }
}
