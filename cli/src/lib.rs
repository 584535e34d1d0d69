//! The `outboard` host command. It finds the installed plugins through dockerd's API, talks to
//! their sockets (`/health`, `/ready`, `/metrics`, `/outboard/v1/…`) and compares what they
//! hold with what dockerd has. Human tables by default, `--json` for scripts.
//!
//! Exit codes: 0 fine; 1 a problem was found or a repair was refused (not ready, leaks,
//! a volume still in use); 2 usage error; 3 dockerd or a plugin could not be reached.

pub mod docker;
pub mod http;
mod ipam;
mod net;
mod ops;
pub mod prom;

use std::path::Path;

use serde_json::Value;

use docker::{Docker, Plugin};

/// Everything fine.
pub const OK: u8 = 0;
/// A problem was found, or a repair refused.
pub const PROBLEM: u8 = 1;
/// Bad command line.
pub const USAGE: u8 = 2;
/// dockerd or a plugin could not be reached.
pub const UNREACHABLE: u8 = 3;

const HELP: &str = "usage: outboard [--json] COMMAND
  status                          each plugin: enabled, ready, version, key gauges
  metrics [KIND]                  the plugins' Prometheus metrics (KIND: volume network ipam authz)
  volume ls                       volumes with backend, mount references, size, problems
  volume inspect NAME             one volume, with the containers that use it
  volume release-mounts NAME      drop mount references dockerd never released (refused while
                                  a running container uses the volume)
  ipam pools                      pools with held/free addresses
  ipam addresses POOL             held addresses of a pool (CIDR or pool ID)
  ipam check                      pools and addresses held without a dockerd network/endpoint
  ipam release [--dry-run]        release what `ipam check` reports (never a live one)
  network check                   bridges, veths and firewall vs. the plugin's state and dockerd
  authz stats                     decisions by rule, policy in force, reloads
  authz check POLICY              validate a policy file with the running plugin's compiler
  authz explain REQUEST           which rule decides REQUEST ('METHOD URI' or a JSON file of an
                                  AuthZReq body) and why
exit codes: 0 fine, 1 problem found or repair refused, 2 usage, 3 dockerd/plugin unreachable
environment: DOCKER_HOST (unix://), OUTBOARD_PLUGIN_ROOT (default /run/docker/plugins)";

/// The command's outcome: exit code and what to print.
pub struct Out {
    /// Exit code.
    pub code: u8,
    /// Human text.
    pub text: String,
    /// The same for `--json`.
    pub json: Value,
}

impl Out {
    fn new(code: u8, text: String, json: Value) -> Self {
        Self { code, text, json }
    }
}

/// A failure that ends the command.
pub struct Fail {
    code: u8,
    msg: String,
}

impl Fail {
    fn usage(msg: impl Into<String>) -> Self {
        Self {
            code: USAGE,
            msg: msg.into(),
        }
    }
    fn unreachable(msg: impl Into<String>) -> Self {
        Self {
            code: UNREACHABLE,
            msg: msg.into(),
        }
    }
    fn problem(msg: impl Into<String>) -> Self {
        Self {
            code: PROBLEM,
            msg: msg.into(),
        }
    }
}

/// Run the command line (without the program name); returns the exit code.
pub fn run(args: &[String]) -> u8 {
    let json = args.iter().any(|a| a == "--json");
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--json")
        .collect();
    if args.is_empty() || matches!(args[0], "-h" | "--help" | "help") {
        println!("{HELP}");
        return if args.is_empty() { USAGE } else { OK };
    }
    match dispatch(&args) {
        Ok(out) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out.json).unwrap_or_default()
                );
            } else if !out.text.is_empty() {
                print!("{}", out.text);
                if !out.text.ends_with('\n') {
                    println!();
                }
            }
            out.code
        }
        Err(f) => {
            if json {
                println!("{}", serde_json::json!({ "error": f.msg }));
            }
            eprintln!("outboard: {}", f.msg);
            f.code
        }
    }
}

fn dispatch(args: &[&str]) -> Result<Out, Fail> {
    let docker = Docker::from_env().map_err(Fail::usage)?;
    match args {
        ["status"] => ops::status(&docker),
        ["metrics"] => ops::metrics(&docker, None),
        ["metrics", kind] => ops::metrics(&docker, Some(kind)),
        ["volume", "ls"] => ops::volume_ls(&docker),
        ["volume", "inspect", name] => ops::volume_inspect(&docker, name),
        ["volume", "release-mounts", name] => ops::volume_release(&docker, name),
        ["ipam", "pools"] => ipam::pools(&docker),
        ["ipam", "addresses", pool] => ipam::addresses(&docker, pool),
        ["ipam", "check"] => ipam::check(&docker, false, true),
        ["ipam", "release", "--dry-run"] => ipam::check(&docker, true, true),
        ["ipam", "release"] => ipam::check(&docker, true, false),
        ["network", "check"] => net::check(&docker),
        ["authz", "stats"] => ops::authz_stats(&docker),
        ["authz", "check", policy] => ops::authz_check(&docker, policy),
        ["authz", "explain", rest @ ..] if !rest.is_empty() => ops::authz_explain(&docker, rest),
        _ => Err(Fail::usage(format!(
            "unknown command {:?}; see outboard --help",
            args.join(" ")
        ))),
    }
}

/// The installed plugin of `kind`, enabled (else a failure naming what is wrong).
fn plugin(docker: &Docker, kind: &str) -> Result<Plugin, Fail> {
    let all = docker.plugins().map_err(Fail::unreachable)?;
    let p = all
        .into_iter()
        .find(|p| p.kind == kind)
        .ok_or_else(|| Fail::unreachable(format!("no outboard {kind} plugin is installed")))?;
    if !p.enabled {
        return Err(Fail::unreachable(format!("plugin {} is disabled", p.name)));
    }
    Ok(p)
}

/// GET a plugin path; a non-200 reply is a failure with the plugin's `Err` text.
fn plugin_get(p: &Plugin, path: &str) -> Result<Value, Fail> {
    plugin_call(p, "GET", path, None)
}

fn plugin_call(p: &Plugin, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Fail> {
    let body = body.map(|b| b.to_string());
    let r = http::request(&p.socket, method, path, body.as_deref().map(str::as_bytes))
        .map_err(|e| Fail::unreachable(format!("{}: {e}", p.name)))?;
    if r.status != 200 {
        return Err(Fail::problem(format!(
            "{} {path}: {} ({})",
            p.name,
            r.error_text(),
            r.status
        )));
    }
    r.json().map_err(Fail::unreachable)
}

fn plugin_text(socket: &Path, path: &str) -> Result<String, String> {
    let r = http::request(socket, "GET", path, None)?;
    if r.status != 200 {
        return Err(format!("{path}: {} {}", r.status, r.error_text()));
    }
    Ok(String::from_utf8_lossy(&r.body).into_owned())
}

/// Render rows as a left-aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < width.len() {
                width[i] = width[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(&c);
            if i + 1 < n {
                let pad = width[i].saturating_sub(c.chars().count()) + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(header.iter().map(|h| h.to_string()).collect(), &mut out);
    for r in rows {
        line(r.clone(), &mut out);
    }
    out
}

/// Human byte count.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["A", "BB"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    BB\nxyz  1\nq    22\n");
    }

    #[test]
    fn byte_counts() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }

    #[test]
    fn unknown_commands_are_usage_errors() {
        assert_eq!(run(&["frobnicate".to_string()]), USAGE);
        assert_eq!(run(&[]), USAGE);
    }
}
