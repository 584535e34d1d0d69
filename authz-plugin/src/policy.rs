//! The policy: its TOML form ([`PolicySpec`]), validation with line numbers, the compiled form
//! ([`Policy`], rules indexed by action so evaluation only looks at candidate rules), and
//! evaluation of one request into a [`Verdict`]. Pure: no files, no clock, no HTTP.
//!
//! ```toml
//! default = "allow"              # what happens when no rule matches (default: "deny")
//! allow_unknown_routes = false   # routes the table does not know are denied unless true
//! audit = true                   # false: no audit lines while this policy is in force
//!
//! [[rule]]
//! name = "no-privileged"
//! effect = "deny"                # "allow" | "deny"
//! message = "privileged containers are not allowed"
//! phase = "request"              # "request" (AuthZReq, default) | "response" (AuthZRes)
//! actions = ["container.create", "container.start", "container.exec"]
//! privileged = true
//! ```
//!
//! A rule matches when every condition it names holds (an omitted condition holds always):
//! `users`, `methods`, `actions` and `paths` (globs, `*` = anything) on the request, and body
//! predicates (see [`RuleSpec`]). A rule with a body predicate only applies to the actions that
//! carry that information. When a deny rule needs a body that is missing, empty or unreadable,
//! the request is denied (fail closed); an allow rule then simply does not match.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::body::{parse_strict, path_under, Facts};
use crate::containers::Containers;
use crate::hostfs::{self, HostFs};
use crate::profile::{Level, Profile};
use crate::route::{self, clean_path, Route};

/// What a rule (or the default) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Let the request through.
    Allow,
    /// Refuse it with the rule's message.
    #[default]
    Deny,
}

/// Which plugin call a rule is evaluated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// `AuthZPlugin.AuthZReq`, before dockerd acts.
    #[default]
    Request,
    /// `AuthZPlugin.AuthZRes`: the action already happened; a deny only hides the output.
    Response,
}

/// The policy file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Effect when no rule matches (default `deny`).
    #[serde(default)]
    pub default: Effect,
    /// Message shown when the default denies.
    #[serde(default)]
    pub default_message: Option<String>,
    /// Let routes the table does not know through to the rules (default: deny them).
    #[serde(default)]
    pub allow_unknown_routes: bool,
    /// `false`: decisions under this policy write no audit lines (the `AUDIT` setting can only
    /// turn auditing off, never on).
    #[serde(default)]
    pub audit: Option<bool>,
    /// The security profile (`none`, `baseline`, `restricted`; see [`crate::profile`]).
    #[serde(default)]
    pub profile: Level,
    /// Host path roots the profile lets containers bind (read-only under `restricted`).
    #[serde(default)]
    pub bind_roots: Vec<String>,
    /// Of `bind_roots`, those that may be bound writable (the others only read-only).
    #[serde(default)]
    pub writable_bind_roots: Vec<String>,
    /// The rules, first match wins.
    #[serde(default, rename = "rule")]
    pub rules: Vec<toml::Spanned<RuleSpec>>,
}

/// One rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique name, shown in denials, audit lines and stats.
    pub name: String,
    /// `allow` or `deny`.
    pub effect: Effect,
    /// Text the user sees when this rule denies.
    #[serde(default)]
    pub message: Option<String>,
    /// `request` (default) or `response`.
    #[serde(default)]
    pub phase: Phase,
    /// TLS user names (globs); a request without a user never matches a `users` rule.
    #[serde(default)]
    pub users: Option<Vec<String>>,
    /// HTTP methods.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Action names or globs (`container.*`).
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    /// Globs on the normalised path (no version, no query).
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Matches requests whose `Privileged` equals this (create, start, exec).
    #[serde(default)]
    pub privileged: Option<bool>,
    /// Matches when any of these capabilities is added (`*` any; a request adding `ALL` matches).
    #[serde(default)]
    pub cap_add: Option<Vec<String>>,
    /// Matches requests whose having devices / device requests / cgroup rules equals this.
    #[serde(default)]
    pub devices: Option<bool>,
    /// Matches when any of these host namespaces is asked for (`network`, `pid`, `ipc`, `uts`,
    /// `userns`, `cgroup`, or `*`).
    #[serde(default)]
    pub host_namespaces: Option<Vec<String>>,
    /// Matches when a security option matches a glob (`seccomp=unconfined`, `apparmor=*`).
    #[serde(default)]
    pub security_opt: Option<Vec<String>>,
    /// Matches when a bound host path lies under one of these prefixes.
    #[serde(default)]
    pub host_path_under: Option<Vec<String>>,
    /// Matches when a bound host path lies outside all of these prefixes.
    #[serde(default)]
    pub host_path_outside: Option<Vec<String>>,
    /// Matches when a sysctl name matches a glob.
    #[serde(default)]
    pub sysctls: Option<Vec<String>>,
    /// Matches when an image matches a glob (as written or fully qualified).
    #[serde(default)]
    pub image_in: Option<Vec<String>>,
    /// Matches when an image matches none of these globs.
    #[serde(default)]
    pub image_not_in: Option<Vec<String>>,
    /// Matches execs whose running as root equals this.
    #[serde(default)]
    pub exec_root: Option<bool>,
    /// Matches when volume options are (`true`) or are not (`false`) provably safe: a `local`
    /// volume that mounts a device or kernel filesystem, a relative device, an unknown mount
    /// type (see `body::volume_risk`).
    #[serde(default)]
    pub unsafe_volume: Option<bool>,
    /// Matches when the request shares another container's namespaces (`container:X`) or
    /// volumes (`VolumesFrom`).
    #[serde(default)]
    pub shares_container: Option<bool>,
    /// Matches when the request shares (`container:X`, `VolumesFrom`) or acts on (exec, attach,
    /// archive, copy) a container the plugin has no record of (see [`crate::containers`]).
    #[serde(default)]
    pub unseen_container: Option<bool>,
    /// Matches when a query parameter, written `key=value`, matches a glob (every value of a
    /// repeated key is tried), e.g. `networkmode=host` on `image.build`.
    #[serde(default)]
    pub query: Option<Vec<String>>,
    /// An allow rule with this set exempts the requests it matches from the security profile
    /// (the rules then decide as usual).
    #[serde(default)]
    pub profile_exempt: bool,
}

/// A policy error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

/// A predicate on the request body (or query).
#[derive(Debug, Clone)]
enum Pred {
    Privileged(bool),
    CapAdd(Vec<String>),
    Devices(bool),
    HostNs(Vec<String>),
    SecurityOpt(Vec<String>),
    HostPathUnder(Vec<String>),
    HostPathOutside(Vec<String>),
    Sysctls(Vec<String>),
    ImageIn(Vec<String>),
    ImageNotIn(Vec<String>),
    ExecRoot(bool),
    UnsafeVolume(bool),
    SharesContainer(bool),
    Unseen(bool),
}

/// Actions on an existing container (the route's `{name}`) that give what the container has:
/// a shell in it, its files (host binds included). Its recorded facts count as the request's.
pub const TARGET_ACTIONS: &[&str] = &[
    "container.exec",
    "container.attach",
    "container.attach.ws",
    "container.archive.get",
    "container.archive.put",
    "container.copy",
];

impl Pred {
    /// The actions whose request carries what this predicate looks at (on the
    /// [`TARGET_ACTIONS`], the facts of the container acted on).
    fn actions(&self) -> &'static [&'static str] {
        // Container risk facts: from host configs, and from the container acted on.
        const RISK: &[&str] = &[
            "container.create",
            "container.start",
            "service.create",
            "service.update",
            "container.exec",
            "container.attach",
            "container.attach.ws",
            "container.archive.get",
            "container.archive.put",
            "container.copy",
        ];
        match self {
            Pred::Privileged(_)
            | Pred::CapAdd(_)
            | Pred::Sysctls(_)
            | Pred::HostNs(_)
            | Pred::SecurityOpt(_) => RISK,
            Pred::UnsafeVolume(_) | Pred::HostPathUnder(_) | Pred::HostPathOutside(_) => &[
                "container.create",
                "container.start",
                "volume.create",
                "service.create",
                "service.update",
                "container.exec",
                "container.attach",
                "container.attach.ws",
                "container.archive.get",
                "container.archive.put",
                "container.copy",
            ],
            Pred::SharesContainer(_) => &["container.create", "container.start"],
            Pred::Unseen(_) => &[
                "container.create",
                "container.start",
                "container.exec",
                "container.attach",
                "container.attach.ws",
                "container.archive.get",
                "container.archive.put",
                "container.copy",
            ],
            Pred::Devices(_) => &[
                "container.create",
                "container.start",
                "container.update",
                "service.create",
                "service.update",
                "container.exec",
                "container.attach",
                "container.attach.ws",
                "container.archive.get",
                "container.archive.put",
                "container.copy",
            ],
            Pred::ImageIn(_) | Pred::ImageNotIn(_) => &[
                "container.create",
                "image.pull",
                "service.create",
                "service.update",
            ],
            Pred::ExecRoot(_) => &["container.exec"],
        }
    }

    /// The facts that must be present for this predicate to hold (see [`Facts::present`]).
    fn needs(&self) -> u16 {
        use crate::body::present as p;
        match self {
            Pred::Privileged(true) => p::PRIVILEGED,
            Pred::CapAdd(_) => p::CAPS,
            Pred::Devices(true) => p::DEVICES,
            Pred::HostNs(_) => p::HOST_NS,
            Pred::SecurityOpt(_) => p::SECURITY_OPTS,
            Pred::HostPathUnder(_) | Pred::HostPathOutside(_) => p::HOST_PATHS,
            Pred::Sysctls(_) => p::SYSCTLS,
            Pred::ImageIn(_) | Pred::ImageNotIn(_) => p::IMAGES,
            Pred::ExecRoot(true) => p::EXEC_ROOT,
            Pred::UnsafeVolume(true) => p::UNSAFE_VOLUMES,
            Pred::SharesContainer(true) => p::SHARED,
            Pred::Unseen(true) => p::UNSEEN,
            Pred::Unseen(false) => 0,
            Pred::Privileged(false)
            | Pred::Devices(false)
            | Pred::ExecRoot(false)
            | Pred::UnsafeVolume(false)
            | Pred::SharesContainer(false) => 0,
        }
    }

    fn holds(&self, f: &Facts) -> bool {
        match self {
            Pred::Privileged(b) => f.privileged == *b,
            Pred::CapAdd(want) => f
                .caps
                .iter()
                .any(|c| c == "ALL" || want.iter().any(|w| w == "*" || w == "ALL" || w == c)),
            Pred::Devices(b) => f.devices == *b,
            Pred::HostNs(want) => f
                .host_namespaces
                .iter()
                .any(|ns| want.iter().any(|w| w == "*" || w == ns)),
            Pred::SecurityOpt(globs) => f.security_opts.iter().any(|o| any_glob(globs, o)),
            Pred::HostPathUnder(prefixes) => f
                .host_paths
                .iter()
                .any(|p| prefixes.iter().any(|pre| path_under(p, pre))),
            Pred::HostPathOutside(prefixes) => f
                .host_paths
                .iter()
                .any(|p| !prefixes.iter().any(|pre| path_under(p, pre))),
            Pred::Sysctls(globs) => f.sysctls.iter().any(|s| any_glob(globs, s)),
            Pred::ImageIn(globs) => f
                .image_names
                .iter()
                .any(|names| names.iter().any(|n| any_glob(globs, n))),
            Pred::ImageNotIn(globs) => f
                .image_names
                .iter()
                .any(|names| !names.iter().any(|n| any_glob(globs, n))),
            Pred::ExecRoot(b) => f.exec_root == *b,
            Pred::UnsafeVolume(b) => f.unsafe_volumes.is_empty() != *b,
            Pred::SharesContainer(b) => f.shared_with.is_empty() != *b,
            Pred::Unseen(b) => f.unseen.is_empty() != *b,
        }
    }
}

/// `*` matches any run of characters, `?` one character; everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

fn any_glob(globs: &[String], text: &str) -> bool {
    globs.iter().any(|g| glob(g, text))
}

/// A compiled rule with its hit counter.
#[derive(Debug)]
pub struct Rule {
    /// Rule name.
    pub name: String,
    /// Allow or deny.
    pub effect: Effect,
    /// Message for denials.
    pub message: String,
    /// Request or response phase.
    pub phase: Phase,
    users: Option<Vec<String>>,
    methods: Option<Vec<String>>,
    paths: Option<Vec<String>>,
    query: Option<Vec<String>>,
    preds: Vec<Pred>,
    /// Whether a match exempts the request from the security profile.
    pub profile_exempt: bool,
    /// How often this rule decided a request since the policy was loaded.
    pub hits: AtomicU64,
}

impl Rule {
    fn head_matches(&self, req: &Request<'_>, route: &Route) -> bool {
        if let Some(users) = &self.users {
            match req.user {
                Some(u) if any_glob(users, u) => {}
                _ => return false,
            }
        }
        if let Some(m) = &self.methods {
            if !m.contains(&route.method) {
                return false;
            }
        }
        if let Some(p) = &self.paths {
            if !any_glob(p, &route.path) {
                return false;
            }
        }
        if let Some(q) = &self.query {
            let hit = route
                .query
                .iter()
                .any(|(k, vs)| vs.iter().any(|v| any_glob(q, &format!("{k}={v}"))));
            if !hit {
                return false;
            }
        }
        true
    }
}

/// One candidate rule of an action, kept small and contiguous so a scan over a thousand rules
/// stays in cache: the facts its predicates need, whether it has any, and its index.
#[derive(Debug, Clone, Copy)]
struct Cand {
    needs: u16,
    has_preds: bool,
    rule: u32,
}

/// action → candidates in file order: `[0]` for requests without a user, `[1]` with one.
type Index = HashMap<&'static str, [Vec<Cand>; 2]>;

/// The compiled policy. Counters live here, so a reload starts them at zero.
#[derive(Debug)]
pub struct Policy {
    /// `sha256:` + hex of the file's bytes (first 16 hex digits).
    pub hash: String,
    /// Default effect.
    pub default: Effect,
    default_message: String,
    /// Whether unknown routes reach the rules.
    pub allow_unknown_routes: bool,
    /// Whether decisions under this policy are audited.
    pub audit: bool,
    /// All rules in file order.
    pub rules: Vec<Rule>,
    /// Request-phase rules that can match each action.
    request_index: Index,
    /// Response-phase rules that can match each action.
    response_index: Index,
    /// Hits of the default and the built-in checks, by name.
    pub builtin_hits: HashMap<&'static str, AtomicU64>,
    /// Whether this is the deny-all stand-in used while no valid policy could be loaded.
    pub placeholder: Option<String>,
    /// The security profile every covered request must satisfy.
    pub profile: Profile,
}

/// Names of the built-in decisions (also the `rule` of their audit lines).
pub const BUILTINS: &[&str] = &[
    "default",
    "builtin:self-protection",
    "builtin:strict-body",
    "builtin:form-body",
    "builtin:unknown-route",
    "builtin:no-policy",
    "builtin:profile",
    "builtin:body-not-forwarded",
];

/// What the daemon sent, in the terms evaluation needs.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// TLS user, if any.
    pub user: Option<&'a str>,
    /// HTTP method.
    pub method: &'a str,
    /// Raw request URI.
    pub uri: &'a str,
    /// Decoded request body, if dockerd forwarded one; `Err` when it was not valid base64.
    pub body: Option<Result<&'a [u8], String>>,
    /// `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// `Content-Length` header, if any.
    pub content_length: Option<&'a str>,
    /// The containers the plugin has seen (`None`: none, every container is unseen).
    pub containers: Option<&'a dyn Containers>,
    /// The host's filesystem, to resolve bind sources (`None`: judged lexically).
    pub host: Option<&'a dyn HostFs>,
}

/// A request classified and its body decoded: the policy-independent half of a decision.
#[derive(Debug)]
pub struct Prepared<'a> {
    /// The request.
    pub req: &'a Request<'a>,
    /// Its route.
    pub route: Route,
    /// Its body: `Ok(None)` when absent or empty, `Err` when not strict JSON or not base64.
    pub body: Result<Option<Value>, String>,
}

impl<'a> Prepared<'a> {
    /// Classify and decode.
    pub fn new(req: &'a Request<'a>) -> Self {
        let body = match &req.body {
            None => Ok(None),
            Some(Err(e)) => Err(e.clone()),
            Some(Ok(b)) if b.trim_ascii().is_empty() => Ok(None),
            Some(Ok(b)) => parse_strict(b).map(Some).map_err(|e| e.to_string()),
        };
        Prepared {
            req,
            route: route::classify(req.method, req.uri),
            body,
        }
    }
}

/// Settings that shape the built-in checks.
#[derive(Debug, Clone, Default)]
pub struct Builtins {
    /// Deny plugin.disable/remove/set/upgrade of these names (normalised with [`plugin_ref`]).
    pub self_names: Vec<String>,
    /// Our plugin ID, when known (an ID prefix also names us).
    pub self_id: Option<String>,
    /// Whether self-protection is on.
    pub self_protection: bool,
    /// Let unknown routes reach the rules even if the policy does not say so.
    pub allow_unknown_routes: bool,
}

/// A decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Allow or deny.
    pub effect: Effect,
    /// Rule name (or a built-in name).
    pub rule: String,
    /// Message for the user (empty on allow).
    pub message: String,
    /// The classified route.
    pub action: &'static str,
    /// Normalised path.
    pub path: String,
}

/// Normalise a plugin reference the way dockerd resolves plugin names: strip `docker.io/`,
/// `index.docker.io/` and `library/`, add `:latest` when no tag is given.
pub fn plugin_ref(name: &str) -> String {
    let mut n = name.trim().to_string();
    for pre in ["docker.io/", "index.docker.io/"] {
        if let Some(rest) = n.strip_prefix(pre) {
            n = rest.to_string();
        }
    }
    if let Some(rest) = n.strip_prefix("library/") {
        n = rest.to_string();
    }
    let last = n.rsplit('/').next().unwrap_or("");
    if !last.contains(':') && !n.contains('@') {
        n.push_str(":latest");
    }
    n
}

impl Builtins {
    fn names_self(&self, name: &str) -> bool {
        let r = plugin_ref(name);
        if self.self_names.iter().any(|s| plugin_ref(s) == r) {
            return true;
        }
        let n = name.trim();
        let is_hex = !n.is_empty() && n.bytes().all(|c| c.is_ascii_hexdigit());
        match &self.self_id {
            Some(id) => is_hex && id.starts_with(&n.to_ascii_lowercase()),
            // Without our ID any ID-looking name could be us: refuse (fail closed).
            None => is_hex,
        }
    }
}

/// Outcome of reading the facts a predicate needs (one per request, on the stack: boxing the
/// large variant would only add an allocation).
#[allow(clippy::large_enum_variant)]
enum FactState {
    Ready(Facts),
    Missing(String),
}

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

    fn builtin(
        &self,
        name: &'static str,
        effect: Effect,
        message: String,
        route: &Route,
    ) -> Verdict {
        if let Some(c) = self.builtin_hits.get(name) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        Verdict {
            effect,
            rule: name.to_string(),
            message,
            action: route.action,
            path: route.path.clone(),
        }
    }

    fn rule_verdict(&self, i: usize, route: &Route, extra: Option<String>) -> Verdict {
        let r = &self.rules[i];
        r.hits.fetch_add(1, Ordering::Relaxed);
        let effect = if extra.is_some() {
            Effect::Deny
        } else {
            r.effect
        };
        let message = match extra {
            Some(why) => format!("{} ({why}; fail closed)", r.message),
            None => r.message.clone(),
        };
        Verdict {
            effect,
            rule: r.name.clone(),
            message,
            action: route.action,
            path: route.path.clone(),
        }
    }

    /// Decide an `AuthZReq`: [`Prepared::new`] then [`Policy::decide`].
    pub fn evaluate_request(&self, req: &Request<'_>, builtins: &Builtins) -> Verdict {
        self.decide(&Prepared::new(req), builtins)
    }

    /// Decide a prepared `AuthZReq` (built-in checks, then the rules, then the default).
    pub fn decide(&self, p: &Prepared<'_>, builtins: &Builtins) -> Verdict {
        let (req, route) = (p.req, &p.route);
        if self.placeholder.is_some() {
            return self.builtin(
                "builtin:no-policy",
                Effect::Deny,
                self.default_message.clone(),
                route,
            );
        }
        // Go's ParseForm reads url-encoded bodies into the parameters dockerd reads, and such a
        // body is never forwarded: refuse them outright (no Docker client sends one).
        if req
            .content_type
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("x-www-form-urlencoded"))
        {
            return self.builtin(
                "builtin:form-body",
                Effect::Deny,
                "url-encoded form bodies are not allowed".into(),
                route,
            );
        }
        if let Err(e) = &p.body {
            return self.builtin("builtin:strict-body", Effect::Deny, e.clone(), route);
        }
        if builtins.self_protection
            && matches!(
                route.action,
                "plugin.disable" | "plugin.remove" | "plugin.set" | "plugin.upgrade"
            )
            && route
                .name
                .as_deref()
                .is_some_and(|n| builtins.names_self(n))
        {
            return self.builtin(
                "builtin:self-protection",
                Effect::Deny,
                format!(
                    "{} of the authorization plugin itself is not allowed (remove it from the daemon's authorization-plugins first)",
                    route.action
                ),
                route,
            );
        }
        if route.action == route::UNKNOWN
            && !(self.allow_unknown_routes || builtins.allow_unknown_routes)
        {
            return self.builtin(
                "builtin:unknown-route",
                Effect::Deny,
                format!("unknown API route {} {}", route.method, route.path),
                route,
            );
        }
        let body = p.body.as_ref().ok().and_then(Option::as_ref);
        if body.is_none() && body_was_sent(req) && carries_body(route.action) {
            // dockerd forwards a body only when it is JSON-typed and small (moby
            // `pkg/authorization/authz.go` `sendBody`), but its handlers decode bodies with no
            // Content-Type or a chunked length too: what we cannot see, we cannot allow.
            if self.profile.active() || self.needs_body(route.action, req.user.is_some()) {
                return self.builtin(
                    "builtin:body-not-forwarded",
                    Effect::Deny,
                    format!(
                        "the body of {} was not forwarded to the authorization plugin (send it as application/json, under 1 MiB)",
                        route.action
                    ),
                    route,
                );
            }
        }
        // Rules first (their messages are the ones operators wrote), then the profile as a
        // floor under every allow: only an allow rule marked `profile_exempt` skips it.
        let matched = self.match_rules(&self.request_index, req, route, body);
        let exempt = matched.as_ref().is_some_and(|v| {
            v.effect == Effect::Allow
                && self
                    .rules
                    .iter()
                    .any(|r| r.name == v.rule && r.profile_exempt)
        });
        let allows = matched
            .as_ref()
            .map_or(self.default == Effect::Allow, |v| v.effect == Effect::Allow);
        if allows && !exempt && self.profile.active() {
            let seen = crate::profile::Seen {
                containers: req.containers,
                host: req.host,
            };
            let judged = self
                .profile
                .judge(route.action, body, &seen)
                .and_then(
                    |()| match (TARGET_ACTIONS.contains(&route.action), &route.name) {
                        (true, Some(x)) => self.profile.judge_target(x, &seen),
                        _ => Ok(()),
                    },
                );
            if let Err(why) = judged {
                return self.builtin("builtin:profile", Effect::Deny, why, route);
            }
        }
        if let Some(v) = matched {
            return v;
        }
        self.builtin("default", self.default, self.default_message_for(), route)
    }

    /// Whether any request-phase rule for `action` looks at the body.
    fn needs_body(&self, action: &str, with_user: bool) -> bool {
        self.request_index
            .get(action)
            .is_some_and(|l| l[usize::from(with_user)].iter().any(|c| c.has_preds))
    }

    fn default_message_for(&self) -> String {
        match self.default {
            Effect::Deny => self.default_message.clone(),
            Effect::Allow => String::new(),
        }
    }

    /// First matching rule of `index` for this request, if any.
    fn match_rules(
        &self,
        index: &Index,
        req: &Request<'_>,
        route: &Route,
        body: Option<&Value>,
    ) -> Option<Verdict> {
        let lists = index.get(route.action)?;
        let candidates = &lists[usize::from(req.user.is_some())];
        let mut facts: Option<FactState> = None;
        for c in candidates {
            let i = c.rule as usize;
            if c.has_preds {
                let state = facts.get_or_insert_with(|| facts_for(req, route, body));
                match state {
                    FactState::Missing(why) => {
                        let rule = self.rules.get(i)?;
                        if rule.effect == Effect::Deny && rule.head_matches(req, route) {
                            return Some(self.rule_verdict(i, route, Some(why.clone())));
                        }
                        continue;
                    }
                    FactState::Ready(f) => {
                        if c.needs & !f.present != 0 {
                            continue;
                        }
                        let rule = self.rules.get(i)?;
                        if !rule.head_matches(req, route) || !rule.preds.iter().all(|p| p.holds(f))
                        {
                            continue;
                        }
                    }
                }
            } else if !self.rules.get(i)?.head_matches(req, route) {
                continue;
            }
            return Some(self.rule_verdict(i, route, None));
        }
        None
    }

    /// Decide an `AuthZRes`: response-phase rules only (their predicates look at the request);
    /// allow unless one denies. The action already happened: a deny only withholds the output.
    pub fn evaluate_response(&self, req: &Request<'_>) -> Verdict {
        let route = route::classify(req.method, req.uri);
        let body = match &req.body {
            Some(Ok(b)) if !b.trim_ascii().is_empty() => parse_strict(b).ok(),
            _ => None,
        };
        if let Some(v) = self.match_rules(&self.response_index, req, &route, body.as_ref()) {
            return v;
        }
        Verdict {
            effect: Effect::Allow,
            rule: "default".into(),
            message: String::new(),
            action: route.action,
            path: route.path,
        }
    }
}

/// Whether the client sent a body (a non-zero or chunked length, or a content type).
fn body_was_sent(req: &Request<'_>) -> bool {
    match req.content_length {
        Some(n) => n.trim() != "0",
        None => req.content_type.is_some_and(|c| !c.trim().is_empty()),
    }
}

/// Actions whose body dockerd decodes into something the policy or profile judges.
fn carries_body(action: &str) -> bool {
    matches!(
        action,
        "container.create"
            | "container.start"
            | "container.update"
            | "container.exec"
            | "volume.create"
            | "service.create"
            | "service.update"
            | "network.create"
            | "network.connect"
            | "plugin.set"
            | "plugin.pull"
            | "plugin.upgrade"
            | "swarm.init"
            | "swarm.join"
            | "swarm.update"
    )
}

/// Work out the facts a body predicate needs, or why they cannot be known.
fn facts_for(req: &Request<'_>, route: &Route, body: Option<&Value>) -> FactState {
    if route.action == "image.pull" {
        // The image comes from the query (`fromImage`, `tag`); dockerd reads the first value.
        let mut f = Facts::default();
        let first = |k: &str| {
            route
                .query
                .get(k)
                .and_then(|v| v.first())
                .cloned()
                .unwrap_or_default()
        };
        if route.query.get("fromImage").is_some_and(|v| v.len() > 1) {
            return FactState::Missing("repeated fromImage parameter".into());
        }
        let (img, tag) = (first("fromImage"), first("tag"));
        f.images.push(match tag.as_str() {
            "" => img,
            t if t.contains(':') => format!("{img}@{t}"),
            t => format!("{img}:{t}"),
        });
        return FactState::Ready(f.finish());
    }
    let containers = req.containers;
    let host = req.host;
    let resolve = |mut f: Facts| -> FactState {
        if let Some(h) = host {
            // Judge the path the kernel will bind, not the one written; one that cannot be
            // resolved could be anywhere, so it counts as `/`.
            for p in &mut f.host_paths {
                *p = hostfs::resolve(h, p).unwrap_or_else(|_| "/".into());
            }
        }
        for x in f.shared_with.clone() {
            let risk = containers.and_then(|c| c.lookup(&x));
            f.absorb(&x, risk.as_ref());
        }
        if TARGET_ACTIONS.contains(&route.action) {
            if let Some(x) = &route.name {
                let risk = containers.and_then(|c| c.lookup(x));
                f.absorb(x, risk.as_ref());
            }
        }
        FactState::Ready(f.finish())
    };
    match body {
        Some(v) => resolve(Facts::from_body(route.action, v)),
        // Attach and archive requests carry no body: the container acted on is the fact.
        None if TARGET_ACTIONS.contains(&route.action) && route.action != "container.exec" => {
            resolve(Facts::default())
        }
        None if route.action == "container.start" => {
            // A start normally has no body; one that was sent but not forwarded (too large or
            // not JSON) could carry a legacy host config.
            let sent = match req.content_length {
                Some(n) => n.trim() != "0",
                None => req.content_type.is_some(),
            };
            if sent {
                FactState::Missing("the request body was not forwarded to the plugin".into())
            } else {
                FactState::Ready(Facts::default())
            }
        }
        None => FactState::Missing(
            "the request body needed to check this is missing, empty, too large or not JSON".into(),
        ),
    }
}

#[cfg(test)]
mod tests;
