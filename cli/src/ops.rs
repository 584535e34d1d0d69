//! `status`, `metrics`, `volume …` and `authz …`.

use serde_json::{json, Value};

use crate::docker::{self, Docker};
use crate::{bytes, plugin, plugin_call, plugin_get, plugin_text, prom, table, Fail, Out};
use crate::{OK, PROBLEM};

/// `outboard status`.
pub(crate) fn status(d: &Docker) -> Result<Out, Fail> {
    let all = d.plugins().map_err(Fail::unreachable)?;
    if all.is_empty() {
        return Err(Fail::unreachable("no outboard plugin is installed"));
    }
    let mut rows = Vec::new();
    let mut js = Vec::new();
    let mut code = OK;
    for p in &all {
        let (ready, version, detail) = if p.enabled {
            let health = plugin_text(&p.socket, "/health")
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok());
            let ready = crate::http::request(&p.socket, "GET", "/ready", None)
                .map(|r| r.status == 200)
                .unwrap_or(false);
            let version = health
                .as_ref()
                .and_then(|h| h["Version"].as_str())
                .unwrap_or("?")
                .to_string();
            let detail = match plugin_text(&p.socket, "/metrics") {
                Ok(t) => summary(&p.kind, &prom::parse(&t)),
                Err(e) => format!("unreachable: {e}"),
            };
            (ready, version, detail)
        } else {
            (false, "-".into(), "disabled".into())
        };
        if !ready {
            code = PROBLEM;
        }
        rows.push(vec![
            p.kind.clone(),
            p.name.clone(),
            p.enabled.to_string(),
            ready.to_string(),
            version.clone(),
            detail.clone(),
        ]);
        js.push(
            json!({"kind": p.kind, "name": p.name, "id": p.id, "enabled": p.enabled,
            "ready": ready, "version": version, "summary": detail,
            "socket": p.socket.display().to_string()}),
        );
    }
    Ok(Out::new(
        code,
        table(
            &["KIND", "NAME", "ENABLED", "READY", "VERSION", "STATE"],
            &rows,
        ),
        Value::Array(js),
    ))
}

/// The one-line state of a plugin from its gauges.
fn summary(kind: &str, s: &[prom::Sample]) -> String {
    let g = |n: &str, l: &[(&str, &str)]| prom::sum(s, n, l) as u64;
    match kind {
        "volume" => format!(
            "{} volumes, {} mounted, {} with problems, {} used",
            g("outboard_volumes", &[]),
            g("outboard_volumes", &[("state", "mounted")]),
            g("outboard_volumes", &[("state", "problem")]),
            bytes(g("outboard_volume_bytes_used", &[]))
        ),
        "network" => format!(
            "{} networks, {} endpoints, firewall {}, {} heals",
            g("outboard_network_networks", &[]),
            g("outboard_network_endpoints", &[]),
            if g("outboard_network_firewall_up", &[]) == 1 {
                "up"
            } else {
                "DOWN"
            },
            g("outboard_network_firewall_heals_total", &[])
        ),
        "ipam" => format!(
            "{} pools, fullest {:.0}%",
            g("outboard_ipam_pools", &[]),
            prom::max(s, "outboard_ipam_pool_utilisation_ratio") * 100.0
        ),
        "authz" => format!(
            "mode {}, policy {}, {} allowed, {} denied",
            s.iter()
                .find(|x| x.name == "outboard_authz_mode")
                .and_then(|x| x.labels.get("mode").cloned())
                .unwrap_or_else(|| "?".into()),
            if g("outboard_authz_policy_valid", &[]) == 1 {
                "valid"
            } else {
                "REJECTED (previous in force)"
            },
            g("outboard_authz_decisions_total", &[("decision", "allow")]),
            g("outboard_authz_decisions_total", &[("decision", "deny")])
        ),
        _ => String::new(),
    }
}

/// `outboard metrics [KIND]`.
pub(crate) fn metrics(d: &Docker, kind: Option<&str>) -> Result<Out, Fail> {
    if let Some(k) = kind {
        if !docker::KINDS.contains(&k) {
            return Err(Fail::usage(format!(
                "unknown plugin kind {k:?} (volume, network, ipam, authz)"
            )));
        }
    }
    let all = d.plugins().map_err(Fail::unreachable)?;
    let mut text = String::new();
    let mut js = serde_json::Map::new();
    let mut found = false;
    for p in all.iter().filter(|p| kind.is_none_or(|k| k == p.kind)) {
        if !p.enabled {
            continue;
        }
        found = true;
        let t = plugin_text(&p.socket, "/metrics")
            .map_err(|e| Fail::unreachable(format!("{}: {e}", p.name)))?;
        text.push_str(&format!("# outboard plugin {} ({})\n", p.name, p.kind));
        text.push_str(&t);
        js.insert(p.kind.clone(), json!(prom::parse(&t)));
    }
    if !found {
        return Err(Fail::unreachable("no enabled outboard plugin to scrape"));
    }
    Ok(Out::new(OK, text, Value::Object(js)))
}

/// `outboard volume ls`.
pub(crate) fn volume_ls(d: &Docker) -> Result<Out, Fail> {
    let p = plugin(d, "volume")?;
    let v = plugin_get(&p, "/outboard/v1/volumes")?;
    let mut rows = Vec::new();
    for x in v.as_array().into_iter().flatten() {
        let refs: u64 = x["mounts"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        rows.push(vec![
            x["name"].as_str().unwrap_or("").into(),
            x["backend"].as_str().unwrap_or("").into(),
            if x["mounted"].as_bool() == Some(true) {
                "yes".into()
            } else {
                "no".into()
            },
            refs.to_string(),
            x["bytes"].as_u64().map(bytes).unwrap_or_else(|| "-".into()),
            x["problem"].as_str().unwrap_or("").into(),
        ]);
    }
    Ok(Out::new(
        OK,
        table(
            &["NAME", "BACKEND", "MOUNTED", "REFS", "SIZE", "PROBLEM"],
            &rows,
        ),
        v,
    ))
}

/// `outboard volume inspect NAME`.
pub(crate) fn volume_inspect(d: &Docker, name: &str) -> Result<Out, Fail> {
    let p = plugin(d, "volume")?;
    let v = plugin_get(
        &p,
        &format!("/outboard/v1/volumes?name={}", docker::encode(name)),
    )?;
    let mut vol = v
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .ok_or_else(|| Fail::problem(format!("no volume {name}")))?;
    let users = d.containers_using_volume(name).map_err(Fail::unreachable)?;
    let live: Vec<&(String, String)> = users
        .iter()
        .filter(|(_, s)| docker::is_live_state(s))
        .collect();
    let refs: u64 = vol["mounts"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    // References without a live container are what `release-mounts` clears.
    let stuck = refs > 0 && live.is_empty();
    vol["containers"] = json!(users
        .iter()
        .map(|(n, s)| json!({"name": n, "state": s}))
        .collect::<Vec<_>>());
    vol["stuck"] = json!(stuck);
    let mut text = String::new();
    for (k, label) in [
        ("name", "Name"),
        ("backend", "Backend"),
        ("created_at", "Created"),
        ("mountpoint", "Mountpoint"),
        ("mounted", "Mounted"),
        ("problem", "Problem"),
    ] {
        let val = match &vol[k] {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        text.push_str(&format!("{label:<12}{val}\n"));
    }
    text.push_str(&format!(
        "{:<12}{}\n",
        "Size",
        vol["bytes"]
            .as_u64()
            .map(bytes)
            .unwrap_or_else(|| "-".into())
    ));
    text.push_str(&format!("{:<12}{refs}\n", "References"));
    for (id, n) in vol["mounts"].as_object().into_iter().flatten() {
        text.push_str(&format!("  {id}  x{n}\n"));
    }
    text.push_str(&format!("{:<12}", "Containers"));
    if users.is_empty() {
        text.push_str("none\n");
    } else {
        text.push('\n');
        for (n, s) in &users {
            text.push_str(&format!("  {n}  {s}\n"));
        }
    }
    if stuck {
        text.push_str(&format!(
            "STUCK: {refs} mount reference(s) and no live container; `outboard volume release-mounts {name}` clears them\n"
        ));
    }
    Ok(Out::new(if stuck { PROBLEM } else { OK }, text, vol))
}

/// `outboard volume release-mounts NAME`: refused while a live container uses the volume.
pub(crate) fn volume_release(d: &Docker, name: &str) -> Result<Out, Fail> {
    let p = plugin(d, "volume")?;
    let users = d.containers_using_volume(name).map_err(Fail::unreachable)?;
    let live: Vec<String> = users
        .iter()
        .filter(|(_, s)| docker::is_live_state(s))
        .map(|(n, s)| format!("{n} ({s})"))
        .collect();
    if !live.is_empty() {
        return Err(Fail::problem(format!(
            "refused: volume {name} is in use by {}; stop those containers first",
            live.join(", ")
        )));
    }
    let r = plugin_call(
        &p,
        "POST",
        "/outboard/v1/volumes/release-mounts",
        Some(&json!({ "Name": name })),
    )?;
    let n: u64 = r["released"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    let text = format!(
        "volume {name}: released {n} mount reference(s){}\n",
        if r["unmounted"].as_bool() == Some(true) {
            ", unmounted"
        } else {
            ""
        }
    );
    Ok(Out::new(OK, text, r))
}

/// `outboard authz stats`.
pub(crate) fn authz_stats(d: &Docker) -> Result<Out, Fail> {
    let p = plugin(d, "authz")?;
    let v = plugin_get(&p, "/outboard/v1/stats")?;
    let mut text = format!(
        "mode {}  policy {}  reloads {}\n",
        v["Mode"].as_str().unwrap_or("?"),
        v["PolicyHash"].as_str().unwrap_or("?"),
        v["Reloads"]
    );
    if let Some(e) = v["LastError"].as_str() {
        text.push_str(&format!("LAST RELOAD REJECTED: {e}\n"));
    }
    let dec: Vec<String> = v["Decisions"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    text.push_str(&format!("decisions: {}\n", dec.join(", ")));
    let rows: Vec<Vec<String>> = v["Rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                r["Name"].as_str().unwrap_or("").into(),
                r["Effect"].as_str().unwrap_or("").into(),
                r["Hits"].to_string(),
            ]
        })
        .collect();
    text.push_str(&table(&["RULE", "EFFECT", "HITS"], &rows));
    let code = if v["LastError"].as_str().is_some_and(|e| !e.is_empty()) {
        PROBLEM
    } else {
        OK
    };
    Ok(Out::new(code, text, v))
}

/// `outboard authz check POLICY`: compiled by the running plugin (same version as in force).
pub(crate) fn authz_check(d: &Docker, path: &str) -> Result<Out, Fail> {
    let p = plugin(d, "authz")?;
    let text = std::fs::read_to_string(path).map_err(|e| Fail::usage(format!("{path}: {e}")))?;
    let r = plugin_call(
        &p,
        "POST",
        "/outboard/v1/policy/check",
        Some(&json!({ "Policy": text })),
    )?;
    let errors: Vec<String> = r["Errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str().map(|e| format!("{path}:{e}")))
        .collect();
    if errors.is_empty() {
        Ok(Out::new(
            OK,
            format!(
                "{path}: valid ({} rules, hash {})\n",
                r["Rules"],
                r["Hash"].as_str().unwrap_or("?")
            ),
            r,
        ))
    } else {
        Ok(Out::new(PROBLEM, errors.join("\n") + "\n", r))
    }
}

/// `outboard authz explain REQUEST`: `METHOD URI` words, or a JSON file of an AuthZReq body.
pub(crate) fn authz_explain(d: &Docker, words: &[&str]) -> Result<Out, Fail> {
    let p = plugin(d, "authz")?;
    let req = match words {
        [file] if std::path::Path::new(file).is_file() => {
            let t =
                std::fs::read_to_string(file).map_err(|e| Fail::usage(format!("{file}: {e}")))?;
            serde_json::from_str::<Value>(&t)
                .map_err(|e| Fail::usage(format!("{file}: not JSON: {e}")))?
        }
        [method, uri] => json!({ "RequestMethod": method.to_ascii_uppercase(), "RequestUri": uri }),
        [method, uri, body] => {
            json!({
                "RequestMethod": method.to_ascii_uppercase(),
                "RequestUri": uri,
                "RequestHeaders": {"Content-Type": "application/json"},
                "RequestBody": b64(body.as_bytes()),
            })
        }
        _ => {
            return Err(Fail::usage(
                "authz explain METHOD URI [JSON-BODY] | authz explain FILE.json",
            ))
        }
    };
    let r = plugin_call(&p, "POST", "/outboard/v1/explain", Some(&req))?;
    let text = format!(
        "decision {}  rule {}\n{}\n",
        r["Decision"].as_str().unwrap_or("?"),
        r["Rule"].as_str().unwrap_or("?"),
        r["Msg"].as_str().unwrap_or("")
    );
    Ok(Out::new(OK, text, r))
}

/// Standard base64 (dockerd sends bodies base64-encoded as Go `[]byte`).
fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_go() {
        assert_eq!(super::b64(b"{}"), "e30=");
        assert_eq!(super::b64(b"abc"), "YWJj");
        assert_eq!(super::b64(b"a"), "YQ==");
    }
}
