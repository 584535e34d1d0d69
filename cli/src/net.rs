//! `outboard network check`: the network plugin's own check (bridges, veths and firewall vs.
//! its store) plus its networks vs. dockerd's.

use serde_json::{json, Value};

use crate::docker::{self, Docker};
use crate::{plugin, plugin_get, table, Fail, Out, OK, PROBLEM};

/// `outboard network check`.
pub(crate) fn check(d: &Docker) -> Result<Out, Fail> {
    let p = plugin(d, "network")?;
    let mut report = plugin_get(&p, "/outboard/v1/check")?;
    let ours: Vec<Value> = d
        .networks()
        .map_err(Fail::unreachable)?
        .into_iter()
        .filter(|n| docker::same_plugin(n["Driver"].as_str().unwrap_or(""), &p.name))
        .collect();
    let stored: Vec<String> = report["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["id"].as_str().map(str::to_string))
        .collect();
    let mut problems: Vec<Vec<String>> = Vec::new();
    for n in &ours {
        let id = n["Id"].as_str().unwrap_or("");
        if !stored.iter().any(|s| s == id) {
            problems.push(vec![
                "network".into(),
                n["Name"].as_str().unwrap_or("").into(),
                "dockerd has it, the plugin does not".into(),
            ]);
        }
    }
    for id in &stored {
        if !ours.iter().any(|n| n["Id"].as_str() == Some(id)) {
            problems.push(vec![
                "network".into(),
                id.chars().take(12).collect(),
                "stored by the plugin, unknown to dockerd".into(),
            ]);
        }
    }
    for (kind, key, name) in [
        ("network", "networks", "bridge"),
        ("endpoint", "endpoints", "host"),
    ] {
        for x in report[key].as_array().into_iter().flatten() {
            for pr in x["problems"].as_array().into_iter().flatten() {
                problems.push(vec![
                    kind.into(),
                    x[name].as_str().unwrap_or("").into(),
                    pr.as_str().unwrap_or("").into(),
                ]);
            }
        }
    }
    for l in report["orphan_links"].as_array().into_iter().flatten() {
        problems.push(vec![
            "link".into(),
            l.as_str().unwrap_or("").into(),
            "carries our mark, no record explains it".into(),
        ]);
    }
    let fw = report["firewall"].as_str().unwrap_or("").to_string();
    if fw != "available" && fw != "unknown" {
        problems.push(vec![
            "firewall".into(),
            report["table"].as_str().unwrap_or("").into(),
            fw.clone(),
        ]);
    }
    let mut text = format!(
        "{} networks, {} endpoints, firewall {} (table {}, {} applies, {} heals)\n",
        stored.len(),
        report["endpoints"].as_array().map_or(0, Vec::len),
        fw,
        report["table"].as_str().unwrap_or(""),
        report["firewall_applies"],
        report["firewall_heals"]
    );
    if problems.is_empty() {
        text.push_str("no problems found\n");
    } else {
        text.push_str(&table(&["WHAT", "NAME", "PROBLEM"], &problems));
    }
    report["problems"] = json!(problems
        .iter()
        .map(|r| json!({"kind": r[0], "name": r[1], "problem": r[2]}))
        .collect::<Vec<_>>());
    Ok(Out::new(
        if problems.is_empty() { OK } else { PROBLEM },
        text,
        report,
    ))
}
