//! Authorization families for `GET /metrics`: decisions by rule and effect, decisions by
//! outcome, policy reloads that succeeded and failed.

use common::metrics::{Kind, MetricsText};

use crate::service::Service;
use crate::sys::Sys;

/// Append the authz families.
pub fn render<S: Sys>(service: &Service<S>, w: &mut MetricsText) {
    let st = service.stats();
    w.family(
        "outboard_authz_decisions_total",
        Kind::Counter,
        "Decisions since start by outcome (allow, deny, would-deny in audit mode).",
    );
    for (outcome, n) in &st.decisions {
        w.sample(
            "outboard_authz_decisions_total",
            &[("decision", outcome)],
            *n as f64,
        );
    }
    w.family(
        "outboard_authz_rule_hits_total",
        Kind::Counter,
        "Decisions made by each rule of the policy in force (reset when a policy is loaded).",
    );
    for r in &st.rules {
        w.sample(
            "outboard_authz_rule_hits_total",
            &[("rule", &r.name), ("effect", r.effect)],
            r.hits as f64,
        );
    }
    w.single(
        "outboard_authz_policy_reloads_total",
        Kind::Counter,
        "Policy loads that succeeded since start.",
        st.reloads as f64,
    );
    w.single(
        "outboard_authz_policy_reload_failures_total",
        Kind::Counter,
        "Policy loads rejected since start (the previous policy stayed in force).",
        service.reload_failures() as f64,
    );
    w.single(
        "outboard_authz_policy_valid",
        Kind::Gauge,
        "1 when the newest policy file is the one in force, 0 when it was rejected.",
        if st.last_error.is_empty() { 1.0 } else { 0.0 },
    );
    w.family(
        "outboard_authz_mode",
        Kind::Gauge,
        "1 for the mode in force (enforce or audit).",
    );
    w.sample("outboard_authz_mode", &[("mode", st.mode)], 1.0);
}
