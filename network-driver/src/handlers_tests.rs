//! Router tests over the recording fake (no privilege needed), and the edge's wire ↔ model
//! conversions on their own.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::service::Service;
use crate::sys::fake::FakeSys;
use crate::Config;

const NET: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const NET2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const EP: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const EP2: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn service(fake: &FakeSys, store: &common::Store) -> Arc<Service<FakeSys>> {
    Arc::new(Service::new(fake.clone(), store.clone(), true).unwrap())
}

async fn call(svc: &Arc<Service<FakeSys>>, path: &str, body: Value) -> (StatusCode, Value) {
    // `Null` stands for the empty body dockerd sends on some calls.
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let path = format!("/NetworkDriver.{path}");
    common::testing::call(&crate::router(svc.clone()), "POST", &path, body).await
}

fn create_net(id: &str, generic: Value, subnet: &str) -> Value {
    let gw = subnet.replace(".0/24", ".1/24");
    json!({
        "NetworkID": id,
        "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": generic},
        "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": subnet, "Gateway": gw}],
        "IPv6Data": []
    })
}

fn create_ep(net: &str, ep: &str, addr: &str) -> Value {
    json!({"NetworkID": net, "EndpointID": ep,
           "Interface": {"Address": addr, "AddressIPv6": "", "MacAddress": ""},
           "Options": {"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []}})
}

#[tokio::test]
async fn capabilities_with_an_empty_body() {
    let fake = FakeSys::new();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    let (s, v) = call(&svc, "GetCapabilities", Value::Null).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"Scope": "local", "ConnectivityScope": "local"}));
}

#[tokio::test]
async fn network_and_endpoint_lifecycle() {
    let fake = FakeSys::new();
    let store = common::Store::temporary().unwrap();
    let svc = service(&fake, &store);
    let (s, v) = call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({"mtu": "1400"}), "10.99.0.0/24"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let bridge = crate::naming::bridge_name(svc.tag(), NET);
    assert_eq!(fake.addrs(&bridge), vec!["10.99.0.1/24".parse().unwrap()]);
    // Repeating the call is fine and makes nothing new.
    let (s, _) = call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({"mtu": "1400"}), "10.99.0.0/24"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    let (s, v) = call(&svc, "CreateEndpoint", create_ep(NET, EP, "10.99.0.2/24")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"Interface": {"MacAddress": "02:42:0a:63:00:02"}}));
    // A given MAC is not echoed.
    let mut with_mac = create_ep(NET, EP2, "10.99.0.3/24");
    with_mac["Interface"]["MacAddress"] = json!("02:00:00:00:00:09");
    let (s, v) = call(&svc, "CreateEndpoint", with_mac).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({}));

    let (s, v) = call(
        &svc,
        "Join",
        json!({"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/x", "Options": {}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["InterfaceName"]["DstPrefix"], "eth");
    assert_eq!(
        v["InterfaceName"]["SrcName"],
        crate::naming::veth_peer(svc.tag(), EP)
    );
    assert_eq!(v["Gateway"], "10.99.0.1");
    assert_eq!(v["DisableGatewayService"], false);
    let (s, v) = call(
        &svc,
        "EndpointOperInfo",
        json!({"NetworkID": NET, "EndpointID": EP}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["Value"]["bridge"], bridge.as_str());

    // Published port, then revoke.
    let pec = json!({"NetworkID": NET, "EndpointID": EP, "Options": {"com.docker.network.portmap": [
        {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080}]}});
    let (s, v) = call(&svc, "ProgramExternalConnectivity", pec).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let fw = fake.firewall().unwrap();
    assert_eq!(fw.ports.len(), 1);
    assert_eq!(fw.ports[0].container_ip.to_string(), "10.99.0.2");
    // The same host port for another endpoint is refused.
    let pec2 = json!({"NetworkID": NET, "EndpointID": EP2, "Options": {"com.docker.network.portmap": [
        {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080}]}});
    let (s, v) = call(&svc, "ProgramExternalConnectivity", pec2).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(v["Err"].as_str().unwrap().contains("tcp/8080"), "{v}");
    let (s, _) = call(
        &svc,
        "RevokeExternalConnectivity",
        json!({"NetworkID": NET, "EndpointID": EP}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(fake.firewall().unwrap().ports.is_empty());

    for ep in [EP, EP2] {
        let (s, _) = call(&svc, "Leave", json!({"NetworkID": NET, "EndpointID": ep})).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = call(
            &svc,
            "DeleteEndpoint",
            json!({"NetworkID": NET, "EndpointID": ep}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = call(
            &svc,
            "DeleteEndpoint",
            json!({"NetworkID": NET, "EndpointID": ep}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "repeated delete is fine");
    }
    assert_eq!(fake.link_names(), vec![bridge.clone()]);
    let (s, _) = call(&svc, "DeleteNetwork", json!({"NetworkID": NET})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(fake.link_names().is_empty());
    assert!(
        fake.firewall().is_none(),
        "the table goes with the last network"
    );
}

#[tokio::test]
async fn internal_network_has_no_gateway() {
    let fake = FakeSys::new();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    let mut body = create_net(NET, json!({}), "10.99.0.0/24");
    body["Options"]["com.docker.network.internal"] = json!(true);
    let (s, v) = call(&svc, "CreateNetwork", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    call(&svc, "CreateEndpoint", create_ep(NET, EP, "10.99.0.2/24")).await;
    let (_, v) = call(&svc, "Join", json!({"NetworkID": NET, "EndpointID": EP})).await;
    assert_eq!(v["DisableGatewayService"], true);
    assert!(v.get("Gateway").is_none());
    let fw = fake.firewall().unwrap();
    assert!(fw.networks[0].internal && !fw.networks[0].masquerade);
}

#[tokio::test]
async fn bad_input_changes_nothing() {
    let fake = FakeSys::new();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    for (generic, needle) in [
        (json!({"colour": "red"}), "unknown option"),
        (json!({"mtu": "12"}), "MTU"),
        (
            json!({"bridge_name": "waytoolongbridgename"}),
            "15 characters",
        ),
    ] {
        let (s, v) = call(
            &svc,
            "CreateNetwork",
            create_net(NET, generic, "10.99.0.0/24"),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["Err"].as_str().unwrap().contains(needle), "{v}");
    }
    assert!(fake.calls().is_empty());
    // A bridge name used by another network, and one held by a foreign link.
    let (s, _) = call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({"bridge_name": "obt-a"}), "10.99.0.0/24"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(
        &svc,
        "CreateNetwork",
        create_net(NET2, json!({"bridge_name": "obt-a"}), "10.99.1.0/24"),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        v["Err"]
            .as_str()
            .unwrap()
            .contains("already used by network 111111111111"),
        "{v}"
    );
    fake.add_foreign_link("eth9", "veth", None);
    let (s, v) = call(
        &svc,
        "CreateNetwork",
        create_net(NET2, json!({"bridge_name": "eth9"}), "10.99.1.0/24"),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(v["Err"].as_str().unwrap().contains("already exists"), "{v}");
    assert_eq!(
        fake.link_names(),
        vec!["eth9".to_string(), "obt-a".to_string()]
    );
    // Endpoint on an unknown network.
    let (s, _) = call(&svc, "CreateEndpoint", create_ep(NET2, EP, "10.99.1.2/24")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn half_made_network_is_rolled_back() {
    let fake = FakeSys::new();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    // Call 1 creates the bridge, call 2 adds the gateway: fail the gateway.
    fake.fail_nth(2);
    let (s, v) = call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({}), "10.99.0.0/24"),
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        v["Err"]
            .as_str()
            .unwrap()
            .contains("adding gateway 10.99.0.1/24"),
        "{v}"
    );
    assert!(fake.link_names().is_empty(), "{:?}", fake.link_names());
    // Then it works.
    let (s, _) = call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({}), "10.99.0.0/24"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // A failed veth leaves nothing and no record.
    fake.fail_nth(1);
    let (s, v) = call(&svc, "CreateEndpoint", create_ep(NET, EP, "10.99.0.2/24")).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        v["Err"].as_str().unwrap().contains("creating veth pair"),
        "{v}"
    );
    assert_eq!(fake.link_names().len(), 1);
    let (s, _) = call(&svc, "Join", json!({"NetworkID": NET, "EndpointID": EP})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// When the firewall cannot be applied, no network is answered 200 unisolated: the request
/// fails and leaves nothing behind (FIREWALL=false is the only way to plain bridging).
#[tokio::test]
async fn firewall_options_need_the_firewall() {
    let fake = FakeSys::new();
    fake.break_firewall();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    let (s, v) = call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({}), "10.99.0.0/24"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["Err"]
            .as_str()
            .unwrap()
            .contains("isolation from the other networks needs the plugin's nftables firewall"),
        "{v}"
    );
    assert!(fake.link_names().is_empty(), "{:?}", fake.link_names());
    let (s, v) = call(
        &svc,
        "CreateNetwork",
        create_net(NET2, json!({"icc": "false"}), "10.99.1.0/24"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["Err"]
            .as_str()
            .unwrap()
            .contains("icc=false needs the plugin's nftables firewall"),
        "{v}"
    );
    assert!(fake.link_names().is_empty(), "{:?}", fake.link_names());
}

#[tokio::test]
async fn reconcile_restores_and_cleans() {
    let fake = FakeSys::new();
    let store = common::Store::temporary().unwrap();
    let svc = service(&fake, &store);
    call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({}), "10.99.0.0/24"),
    )
    .await;
    call(&svc, "CreateEndpoint", create_ep(NET, EP, "10.99.0.2/24")).await;
    let bridge = crate::naming::bridge_name(svc.tag(), NET);
    // The bridge vanished (host reboot); leftovers of ours and of another instance exist.
    fake.remove_link(&bridge);
    let tag = svc.tag().to_string();
    fake.add_foreign_link(&crate::naming::veth_host(&tag, EP2), "veth", None);
    fake.add_foreign_link(
        "obt-gone",
        "bridge",
        Some(&crate::naming::network_alias(&tag, NET2)),
    );
    fake.add_foreign_link(
        "obt-other",
        "bridge",
        Some(&crate::naming::network_alias("zzzz", NET2)),
    );
    fake.add_foreign_link("eth0", "veth", None);
    // A new service over the same store (plugin restart).
    let svc2 = service(&fake, &store);
    assert_eq!(svc2.tag(), tag);
    let r = svc2.reconcile().await.unwrap();
    assert_eq!(r.recreated, 1);
    // Only the marked leftover goes; the unmarked one under our naming is reported, untouched.
    assert_eq!(r.deleted, 1, "{r:?}");
    assert!(r.errors.iter().any(|e| e.contains("left alone")), "{r:?}");
    let names = fake.link_names();
    assert!(names.contains(&crate::naming::veth_host(&tag, EP2)));
    assert!(names.contains(&bridge));
    assert!(names.contains(&"obt-other".to_string()));
    assert!(names.contains(&"eth0".to_string()));
    assert!(!names.contains(&"obt-gone".to_string()));
    assert!(names.contains(&crate::naming::veth_host(&tag, EP)));
    assert!(fake.firewall().is_some());
}

#[test]
fn config_json_matches_the_settings() {
    common::config::check_config_json::<Config>(include_str!("../../deploy/network/config.json"))
        .unwrap();
}

#[tokio::test]
async fn swarm_only_calls_are_answered() {
    let fake = FakeSys::new();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    let (s, v) = call(&svc, "DiscoverNew", json!({"DiscoveryType": 1, "DiscoveryData": {"Address": "10.0.0.5", "BindAddress": "", "Self": true}})).await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    let (s, v) = call(
        &svc,
        "AllocateNetwork",
        create_net(NET, json!({}), "10.99.0.0/24"),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({"Options": {}})));
    let (s, v) = call(&svc, "FreeNetwork", json!({"NetworkID": NET})).await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    assert!(fake.calls().is_empty(), "swarm calls change nothing");
}

#[tokio::test]
async fn host_port_zero_and_ranges_are_chosen() {
    let fake = FakeSys::new();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({}), "10.99.0.0/24"),
    )
    .await;
    call(&svc, "CreateEndpoint", create_ep(NET, EP, "10.99.0.2/24")).await;
    call(&svc, "CreateEndpoint", create_ep(NET, EP2, "10.99.0.3/24")).await;
    let pec = |ep: &str, host: u16, end: u16| {
        json!({"NetworkID": NET, "EndpointID": ep, "Options": {"com.docker.network.portmap": [
        {"Proto": 17, "IP": "", "Port": 53, "HostIP": "", "HostPort": host, "HostPortEnd": end}]}})
    };
    let (s, v) = call(&svc, "ProgramExternalConnectivity", pec(EP, 9000, 9002)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(&svc, "ProgramExternalConnectivity", pec(EP2, 9000, 9002)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut ports: Vec<u16> = fake
        .firewall()
        .unwrap()
        .ports
        .iter()
        .map(|p| p.host_port)
        .collect();
    ports.sort();
    assert_eq!(
        ports,
        vec![9000, 9001],
        "the range gives the next free port"
    );
    call(
        &svc,
        "RevokeExternalConnectivity",
        json!({"NetworkID": NET, "EndpointID": EP2}),
    )
    .await;
    let (s, _) = call(&svc, "ProgramExternalConnectivity", pec(EP2, 0, 0)).await;
    assert_eq!(s, StatusCode::OK);
    let fw = fake.firewall().unwrap();
    let picked = fw
        .ports
        .iter()
        .find(|p| p.container_ip.to_string() == "10.99.0.3")
        .unwrap();
    assert!(
        picked.host_port >= 49153 && picked.proto == 17,
        "{picked:?}"
    );
    let (_, v) = call(
        &svc,
        "EndpointOperInfo",
        json!({"NetworkID": NET, "EndpointID": EP2}),
    )
    .await;
    assert_eq!(
        v["Value"]["published_ports"][0]["HostPort"],
        picked.host_port
    );
}

/// Ownership is decided by the mark, never by the name: a foreign link under a name the driver
/// expects is never used, attached to, changed or deleted.
#[tokio::test]
async fn foreign_links_under_our_names_are_never_touched() {
    let fake = FakeSys::new();
    let store = common::Store::temporary().unwrap();
    let svc = service(&fake, &store);
    let tag = svc.tag().to_string();
    // CreateNetwork: a foreign link holds the generated bridge name.
    let generated = crate::naming::bridge_name(&tag, NET);
    fake.add_foreign_link(&generated, "bridge", Some("admin bridge"));
    let (s, v) = call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({}), "10.99.0.0/24"),
    )
    .await;
    assert_ne!(s, StatusCode::OK, "{v}");
    assert!(v["Err"].as_str().unwrap().contains(&generated), "{v}");
    assert!(fake.link_names().contains(&generated));
    fake.remove_link(&generated);
    // Create it for real, then an administrator's bridge replaces ours under the same name.
    let (s, _) = call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({}), "10.99.0.0/24"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    fake.remove_link(&generated);
    fake.add_foreign_link(&generated, "bridge", None);
    // CreateEndpoint refuses to attach to it.
    let (s, v) = call(&svc, "CreateEndpoint", create_ep(NET, EP, "10.99.0.2/24")).await;
    assert_ne!(s, StatusCode::OK, "{v}");
    assert!(
        v["Err"].as_str().unwrap().contains("not this driver's"),
        "{v}"
    );
    assert_eq!(fake.link_names().len(), 1, "{:?}", fake.link_names());
    // Restart: reconcile neither adopts nor deletes it.
    let svc2 = service(&fake, &store);
    let r = svc2.reconcile().await.unwrap();
    assert!(!r.errors.is_empty(), "{r:?}");
    assert!(fake.link_names().contains(&generated));
    // DeleteNetwork fails, naming the link, and leaves it.
    let (s, v) = call(&svc2, "DeleteNetwork", json!({"NetworkID": NET})).await;
    assert_ne!(s, StatusCode::OK, "{v}");
    assert!(v["Err"].as_str().unwrap().contains(&generated), "{v}");
    assert!(fake.link_names().contains(&generated));
    assert!(
        !fake.calls().iter().any(|c| c.starts_with("delete_link")),
        "{:?}",
        fake.calls()
    );
}

/// Endpoint IDs that share their first 9 characters get distinct veth names.
#[tokio::test]
async fn endpoint_ids_sharing_a_prefix_do_not_collide() {
    let fake = FakeSys::new();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({}), "10.99.0.0/24"),
    )
    .await;
    let a = format!("{}{}", "c".repeat(9), "1".repeat(55));
    let b = format!("{}{}", "c".repeat(9), "2".repeat(55));
    let (s, v) = call(&svc, "CreateEndpoint", create_ep(NET, &a, "10.99.0.2/24")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(&svc, "CreateEndpoint", create_ep(NET, &b, "10.99.0.3/24")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let names = fake.link_names();
    assert_eq!(names.len(), 5, "{names:?}");
    // Deleting one leaves the other's pair.
    let (s, _) = call(
        &svc,
        "DeleteEndpoint",
        json!({"NetworkID": NET, "EndpointID": a}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(fake.link_names().len(), 3, "{:?}", fake.link_names());
}

/// Endpoint addresses outside the network's pools, or already held by another endpoint, are
/// refused and create nothing.
#[tokio::test]
async fn endpoint_addresses_are_checked() {
    let fake = FakeSys::new();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({}), "10.99.0.0/24"),
    )
    .await;
    let (s, v) = call(&svc, "CreateEndpoint", create_ep(NET, EP, "10.98.0.2/24")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["Err"].as_str().unwrap().contains("outside"), "{v}");
    let (s, _) = call(&svc, "CreateEndpoint", create_ep(NET, EP, "10.99.0.2/24")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(&svc, "CreateEndpoint", create_ep(NET, EP2, "10.99.0.2/24")).await;
    assert_ne!(s, StatusCode::OK, "{v}");
    assert!(v["Err"].as_str().unwrap().contains("already used"), "{v}");
    assert_eq!(fake.link_names().len(), 3, "{:?}", fake.link_names());
}

/// FIREWALL=false after a run with the firewall removes the old table at start.
#[tokio::test]
async fn firewall_false_removes_an_old_table() {
    let fake = FakeSys::new();
    let store = common::Store::temporary().unwrap();
    let svc = Arc::new(Service::new(fake.clone(), store, false).unwrap());
    svc.reconcile().await.unwrap();
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.starts_with("remove_firewall")),
        "{:?}",
        fake.calls()
    );
}

/// Published ports exactly as asked: container port 0 is refused, an IPv6 host address on an
/// endpoint without IPv6 is refused (never widened to every local address); `::` beside an
/// IPv4 binding is covered by it there.
#[tokio::test]
async fn published_ports_are_exactly_as_asked() {
    let fake = FakeSys::new();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({}), "10.99.0.0/24"),
    )
    .await;
    call(&svc, "CreateEndpoint", create_ep(NET, EP, "10.99.0.2/24")).await;
    let pec = |maps: Value| json!({"NetworkID": NET, "EndpointID": EP, "Options": {"com.docker.network.portmap": maps}});
    for (maps, needle) in [
        (
            json!([{"Proto": 6, "IP": "", "Port": 0, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080}]),
            "container port",
        ),
        (
            json!([{"Proto": 6, "IP": "", "Port": 80, "HostIP": "::1", "HostPort": 8080, "HostPortEnd": 8080}]),
            "IPv6 address ::1 needs an IPv6 address on the endpoint",
        ),
    ] {
        let (s, v) = call(&svc, "ProgramExternalConnectivity", pec(maps)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["Err"].as_str().unwrap().contains(needle), "{v}");
    }
    let both = json!([
        {"Proto": 6, "IP": "", "Port": 80, "HostIP": "0.0.0.0", "HostPort": 8080, "HostPortEnd": 8080},
        {"Proto": 6, "IP": "", "Port": 80, "HostIP": "::", "HostPort": 8080, "HostPortEnd": 8080}]);
    let (s, v) = call(&svc, "ProgramExternalConnectivity", pec(both)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let fw = fake.firewall().unwrap();
    assert_eq!(fw.ports.len(), 1, "{fw:?}");
}

/// On a dual-stack endpoint each binding is published in its own family, to the endpoint's
/// address of that family: `::` and `0.0.0.0` both, an IPv6 host address alone; IPv4 and IPv6
/// bindings of one port do not clash, two IPv6 ones do.
#[tokio::test]
async fn ipv6_bindings_are_published_to_the_ipv6_address() {
    let fake = FakeSys::new();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    let mut net = create_net(NET, json!({}), "10.99.0.0/24");
    net["Options"]["com.docker.network.enable_ipv6"] = json!(true);
    net["IPv6Data"] = json!([{"AddressSpace": "LocalDefault", "Pool": "fd00:99::/64", "Gateway": "fd00:99::1/64"}]);
    let (s, v) = call(&svc, "CreateNetwork", net).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (ep, a4, a6) in [
        (EP, "10.99.0.2/24", "fd00:99::2/64"),
        (EP2, "10.99.0.3/24", "fd00:99::3/64"),
    ] {
        let mut body = create_ep(NET, ep, a4);
        body["Interface"]["AddressIPv6"] = json!(a6);
        let (s, v) = call(&svc, "CreateEndpoint", body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let pec = |ep: &str, maps: Value| json!({"NetworkID": NET, "EndpointID": ep, "Options": {"com.docker.network.portmap": maps}});
    let both = json!([
        {"Proto": 6, "IP": "", "Port": 80, "HostIP": "0.0.0.0", "HostPort": 8080, "HostPortEnd": 8080},
        {"Proto": 6, "IP": "", "Port": 80, "HostIP": "::", "HostPort": 8080, "HostPortEnd": 8080}]);
    let (s, v) = call(&svc, "ProgramExternalConnectivity", pec(EP, both)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let fw = fake.firewall().unwrap();
    let mut got: Vec<String> = fw
        .ports
        .iter()
        .map(|p| format!("{:?} {} -> {}", p.host_ip, p.host_port, p.container_ip))
        .collect();
    got.sort();
    assert_eq!(got, ["None 8080 -> 10.99.0.2", "None 8080 -> fd00:99::2"]);
    // A second endpoint: the same port on one IPv6 host address clashes with `::`.
    let one6 = json!([{"Proto": 6, "IP": "", "Port": 80, "HostIP": "fd00:99::1", "HostPort": 8080, "HostPortEnd": 8080}]);
    let (s, v) = call(&svc, "ProgramExternalConnectivity", pec(EP2, one6)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let other = json!([{"Proto": 6, "IP": "", "Port": 80, "HostIP": "fd00:99::1", "HostPort": 8081, "HostPortEnd": 8081}]);
    let (s, v) = call(&svc, "ProgramExternalConnectivity", pec(EP2, other)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let fw = fake.firewall().unwrap();
    assert!(
        fw.ports
            .iter()
            .any(|p| p.host_ip == Some("fd00:99::1".parse().unwrap())
                && p.container_ip == "fd00:99::3".parse::<std::net::IpAddr>().unwrap()),
        "{fw:?}"
    );
}

/// Concurrent CreateEndpoint / Join / DeleteEndpoint on one endpoint: afterwards a recorded
/// endpoint always has its veth and an unrecorded one has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_on_one_endpoint_stay_consistent() {
    let fake = FakeSys::new();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    call(
        &svc,
        "CreateNetwork",
        create_net(NET, json!({}), "10.99.0.0/24"),
    )
    .await;
    let host = crate::naming::veth_host(svc.tag(), EP);
    for round in 0..20 {
        let mut tasks = Vec::new();
        for k in 0..6 {
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                match (k + round) % 3 {
                    0 => call(&svc, "CreateEndpoint", create_ep(NET, EP, "10.99.0.2/24")).await,
                    1 => {
                        call(
                            &svc,
                            "Join",
                            json!({"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/x"}),
                        )
                        .await
                    }
                    _ => {
                        call(
                            &svc,
                            "DeleteEndpoint",
                            json!({"NetworkID": NET, "EndpointID": EP}),
                        )
                        .await
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (s, _) = call(
            &svc,
            "EndpointOperInfo",
            json!({"NetworkID": NET, "EndpointID": EP}),
        )
        .await;
        let recorded = s == StatusCode::OK;
        let veth = fake.link_names().contains(&host);
        assert_eq!(
            recorded, veth,
            "round {round}: record {recorded}, veth {veth}"
        );
    }
}

// ----- the edge alone: wire → model and back, no service -----

#[test]
fn create_endpoint_is_validated_at_the_edge() {
    use crate::model::NewEndpoint;
    let req = |iface: Value| -> crate::api::CreateEndpointRequest {
        serde_json::from_value(json!({"NetworkID": NET, "EndpointID": EP, "Interface": iface}))
            .unwrap()
    };
    let ok = NewEndpoint::try_from(req(json!({"Address": "10.99.0.2/24",
        "AddressIPv6": "fd00::2/64", "MacAddress": "02:00:00:00:00:09"})))
    .unwrap();
    assert_eq!(ok.v4, Some("10.99.0.2/24".parse().unwrap()));
    assert_eq!(ok.v6, Some("fd00::2/64".parse().unwrap()));
    assert_eq!(ok.mac, Some([2, 0, 0, 0, 0, 9]));
    for (iface, needle) in [
        (json!({"MacAddress": "02:00"}), "is not a MAC address"),
        (
            json!({"Address": "10.99.0.2"}),
            "not an address in CIDR form",
        ),
        (
            json!({"AddressIPv6": "10.99.0.2/24"}),
            "wrong address family",
        ),
    ] {
        let e = NewEndpoint::try_from(req(iface)).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    let mut bad_id = req(json!({}));
    bad_id.endpoint_id = "x".into();
    assert!(NewEndpoint::try_from(bad_id).is_err());
}

#[test]
fn portmap_is_decoded_at_the_edge() {
    use crate::model::PortRequest;
    let req = |map: Value| -> crate::api::ExternalConnectivityRequest {
        serde_json::from_value(json!({"NetworkID": NET, "EndpointID": EP,
            "Options": {"com.docker.network.portmap": map}}))
        .unwrap()
    };
    assert!(PortRequest::try_from(req(Value::Null))
        .unwrap()
        .bindings
        .is_empty());
    let p =
        PortRequest::try_from(req(json!([{"Proto": 17, "Port": 53, "HostPort": 5353}]))).unwrap();
    assert_eq!(
        (p.bindings[0].proto, p.bindings[0].container_port),
        (17, 53)
    );
    let e = PortRequest::try_from(req(json!("80:80"))).unwrap_err();
    assert!(e.to_string().contains("does not decode"), "{e}");
}

#[test]
fn replies_are_mapped_back_as_before() {
    use crate::model::{CreatedEndpoint, Joined};
    let j = crate::api::JoinResponse::from(Joined {
        src_name: "veth".into(),
        dst_prefix: "eth".into(),
        gateway: None,
        gateway_v6: Some("fd00::1".parse().unwrap()),
        disable_gateway_service: false,
    });
    assert_eq!(
        serde_json::to_value(&j).unwrap(),
        json!({"InterfaceName": {"SrcName": "veth", "DstPrefix": "eth"},
               "GatewayIPv6": "fd00::1", "DisableGatewayService": false})
    );
    let c = crate::api::CreateEndpointResponse::from(CreatedEndpoint {
        generated_mac: None,
    });
    assert_eq!(serde_json::to_value(&c).unwrap(), json!({}));
}

#[tokio::test]
async fn operator_check_is_routed() {
    let fake = FakeSys::new();
    let svc = service(&fake, &common::Store::temporary().unwrap());
    let req = Request::builder()
        .method("GET")
        .uri("/outboard/v1/check")
        .body(Body::empty())
        .unwrap();
    let resp = crate::router(svc.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["instance"], svc.tag());
}
