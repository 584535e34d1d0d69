//! Deciding one request: the built-in checks (form bodies, strict bodies, self-protection,
//! unknown routes, bodies not forwarded), then the rules, then the security profile and the
//! default; and the facts a body predicate needs.

use super::*;

/// Outcome of reading the facts a predicate needs (one per request, on the stack: boxing the
/// large variant would only add an allocation).
#[allow(clippy::large_enum_variant)]
pub(super) enum FactState {
    Ready(Facts),
    Missing(String),
}

impl Policy {
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
