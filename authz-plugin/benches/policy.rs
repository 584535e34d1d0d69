//! Policy evaluation in-process: a privileged create against policies of 10, 200 and 1,000
//! rules (the target is under 10 µs at 1,000 rules), and the allow-all floor.

use std::hint::black_box;

use authz_plugin::policy::{Builtins, Policy, Prepared, Request};
use criterion::{criterion_group, criterion_main, Criterion};

/// A policy of `n` rules of every kind, spread over actions, with the decisive rule last.
pub fn generated_policy(n: usize) -> String {
    let mut s = String::from("default = \"allow\"\n");
    let kinds = [
        "actions = [\"container.create\"]\nimage_in = [\"evil{i}/*\"]",
        "actions = [\"container.create\"]\ncap_add = [\"CAP{i}\"]",
        "actions = [\"container.create\"]\nhost_path_under = [\"/forbidden/{i}\"]",
        "actions = [\"container.create\"]\nsysctls = [\"kernel.x{i}\"]",
        "users = [\"user{i}\"]",
        "paths = [\"/containers/name{i}/*\"]",
        "actions = [\"volume.create\"]\nhost_path_under = [\"/v{i}\"]",
        "methods = [\"DELETE\"]\nactions = [\"image.delete\"]\npaths = [\"/images/x{i}\"]",
    ];
    for i in 0..n.saturating_sub(1) {
        let body = kinds[i % kinds.len()].replace("{i}", &i.to_string());
        s.push_str(&format!(
            "[[rule]]\nname = \"r{i}\"\neffect = \"deny\"\nmessage = \"rule {i}\"\n{body}\n"
        ));
    }
    s.push_str("[[rule]]\nname = \"no-privileged\"\neffect = \"deny\"\nprivileged = true\n");
    s
}

fn bench(c: &mut Criterion) {
    let body = br#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["sh","-c","true"],"Image":"local/busybox","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":["/srv/containers/x:/x"],"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":true,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"ConsoleSize":[0,0],"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":null,"BlkioDeviceWriteBps":null,"BlkioDeviceReadIOps":null,"BlkioDeviceWriteIOps":null,"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"KernelMemory":0,"KernelMemoryTCP":0,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":null,"OomKillDisable":false,"PidsLimit":null,"Ulimits":null,"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{}}}"#;
    let builtins = Builtins {
        self_names: vec!["outboard-authz:latest".into()],
        self_id: None,
        self_protection: true,
        allow_unknown_routes: false,
    };
    let req = Request {
        user: None,
        method: "POST",
        uri: "/v1.41/containers/create?name=bench",
        body: Some(Ok(&body[..])),
        content_type: Some("application/json"),
        content_length: Some("1800"),
        containers: None,
        host: None,
    };
    let ping = Request {
        method: "HEAD",
        uri: "/_ping",
        ..Request::default()
    };
    for n in [10usize, 200, 1000] {
        let p = match Policy::compile(&generated_policy(n)) {
            Ok(p) => p,
            Err(e) => panic!("{e:?}"),
        };
        assert!(!p
            .evaluate_request(&req, &builtins)
            .effect
            .eq(&authz_plugin::policy::Effect::Allow));
        c.bench_function(
            &format!("full decision, privileged create, {n} rules"),
            |b| b.iter(|| black_box(p.evaluate_request(black_box(&req), &builtins))),
        );
        let prepared = Prepared::new(&req);
        c.bench_function(
            &format!("rule evaluation, privileged create, {n} rules"),
            |b| b.iter(|| black_box(p.decide(black_box(&prepared), &builtins))),
        );
        c.bench_function(&format!("HEAD /_ping, {n} rules"), |b| {
            b.iter(|| black_box(p.evaluate_request(black_box(&ping), &builtins)))
        });
    }
    c.bench_function("strict parse of a CLI create body", |b| {
        b.iter(|| black_box(authz_plugin::body::parse_strict(black_box(&body[..]))))
    });
    c.bench_function("serde_json::Value parse of the same body", |b| {
        b.iter(|| {
            black_box(serde_json::from_slice::<serde_json::Value>(black_box(
                &body[..],
            )))
        })
    });
    c.bench_function("classify a create URI", |b| {
        b.iter(|| {
            black_box(authz_plugin::route::classify(
                "POST",
                black_box("/v1.41/containers/create?name=x"),
            ))
        })
    });
    let allow_all = match Policy::compile("default = \"allow\"\n") {
        Ok(p) => p,
        Err(e) => panic!("{e:?}"),
    };
    c.bench_function("privileged create, allow-all", |b| {
        b.iter(|| black_box(allow_all.evaluate_request(black_box(&req), &builtins)))
    });
}

// The macro defines an undocumented `pub fn benches`.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, bench);
}
use group::benches;
criterion_main!(benches);
