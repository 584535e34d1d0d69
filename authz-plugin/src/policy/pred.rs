//! Compiled rules: body and query predicates ([`Pred`]), globs, and [`Rule`] matching, with
//! the per-action candidate lists evaluation scans.

use super::*;

/// A predicate on the request body (or query).
#[derive(Debug, Clone)]
pub(super) enum Pred {
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
    pub(super) fn actions(&self) -> &'static [&'static str] {
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
    pub(super) fn needs(&self) -> u16 {
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

    pub(super) fn holds(&self, f: &Facts) -> bool {
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

pub(super) fn any_glob(globs: &[String], text: &str) -> bool {
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
    pub(super) users: Option<Vec<String>>,
    pub(super) methods: Option<Vec<String>>,
    pub(super) paths: Option<Vec<String>>,
    pub(super) query: Option<Vec<String>>,
    pub(super) preds: Vec<Pred>,
    /// Whether a match exempts the request from the security profile.
    pub profile_exempt: bool,
    /// How often this rule decided a request since the policy was loaded.
    pub hits: AtomicU64,
}

impl Rule {
    pub(super) fn head_matches(&self, req: &Request<'_>, route: &Route) -> bool {
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
pub(super) struct Cand {
    pub(super) needs: u16,
    pub(super) has_preds: bool,
    pub(super) rule: u32,
}

/// action → candidates in file order: `[0]` for requests without a user, `[1]` with one.
pub(super) type Index = HashMap<&'static str, [Vec<Cand>; 2]>;
