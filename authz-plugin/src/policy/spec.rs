//! The policy file as written: [`PolicySpec`] and [`RuleSpec`] (serde, TOML), and errors with
//! their line and column.

use super::*;

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

pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}
