//! Service logic against the recording fake: no root, no kernel.

use super::*;
use crate::options::{CallerId, VolumeName};
use crate::sys::FakeSys;
use serde_json::{Map, Value};

fn paths() -> Paths {
    Paths {
        data_dir: "/data".into(),
        mount_root: "/mnt/volumes".into(),
        host_root: "/host".into(),
    }
}

fn build(store: Store, fake: &Arc<FakeSys>, allowed: &[&str]) -> Arc<Service<FakeSys>> {
    let svc = Service::new(
        fake.clone(),
        store,
        paths(),
        allowed.iter().map(|s| s.to_string()).collect(),
    )
    .unwrap();
    svc.prepare().unwrap();
    Arc::new(svc)
}

fn setup(allowed: &[&str]) -> (Arc<Service<FakeSys>>, Arc<FakeSys>) {
    let fake = Arc::new(FakeSys::new());
    (build(Store::temporary().unwrap(), &fake, allowed), fake)
}

/// A valid name (tests use literals that are).
fn n(name: &str) -> VolumeName {
    VolumeName::try_from(name).unwrap()
}

/// A valid caller ID.
fn id(id: &str) -> CallerId {
    CallerId::try_from(id).unwrap()
}

fn opts(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn status_of(svc: &Service<FakeSys>, name: &str) -> Map<String, Value> {
    crate::handlers::status_json(&svc.get(&n(name)).unwrap().status)
}

#[tokio::test]
async fn create_dir_applies_owner_and_mode_and_records() {
    let (svc, fake) = setup(&[]);
    svc.create(
        &n("v1"),
        opts(&[("uid", "1000"), ("gid", "1000"), ("mode", "0750")]),
    )
    .await
    .unwrap();
    assert_eq!(
        fake.dir("/data/v1"),
        Some(Ownership {
            uid: Some(1000),
            gid: Some(1000),
            mode: Some(0o750)
        })
    );
    let v = svc.get(&n("v1")).unwrap();
    assert_eq!(v.name, "v1");
    assert_eq!(v.mountpoint, "/mnt/volumes/v1");
    time::OffsetDateTime::parse(
        &v.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let s = crate::handlers::status_json(&v.status);
    assert_eq!(s["Backend"], "dir");
    assert_eq!(s["Owner"], "1000:1000");
    assert_eq!(s["Mode"], "0750");
    assert_eq!(s["Mounts"], 0);
    assert_eq!(s["Options"]["uid"], "1000");
    assert_eq!(s["SizeUsedBytes"], 0);
    assert_eq!(s["State"], "ok");
    assert_eq!(svc.list().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_input_creates_nothing() {
    let (svc, fake) = setup(&[]);
    fake.clear_calls();
    for (name, o, needle) in [
        ("a/b", None, "path separator"),
        ("..", None, "'..'"),
        (
            "v",
            opts(&[("colour", "red")]),
            "valid options: type, uid, gid, mode, size",
        ),
        ("v", opts(&[("size", "big")]), "option size"),
        (
            "v",
            opts(&[("type", "tmpfs"), ("size", "0")]),
            "option size",
        ),
        ("v", opts(&[("mode", "8")]), "option mode"),
    ] {
        // Bad names never become a `VolumeName`; bad options are refused by the service.
        let e = match VolumeName::try_from(name) {
            Ok(name) => svc.create(&name, o).await.unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(needle), "{name}: {e}");
    }
    assert!(svc.is_empty());
    assert!(
        fake.calls()
            .iter()
            .all(|c| !c.starts_with("make_volume_dir")),
        "{:?}",
        fake.calls()
    );
}

#[tokio::test]
async fn size_on_dir_names_the_filesystem() {
    let (svc, fake) = setup(&[]);
    fake.set_fs_type("ext4");
    let e = svc
        .create(&n("v"), opts(&[("size", "10m")]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("project quotas") && e.contains("ext4") && e.contains("tmpfs"),
        "{e}"
    );
    assert!(svc.is_empty());
}

#[tokio::test]
async fn create_is_idempotent_with_same_options_only() {
    let (svc, _) = setup(&[]);
    svc.create(&n("v"), opts(&[("mode", "700")])).await.unwrap();
    let created = svc.get(&n("v")).unwrap().created_at;
    svc.create(&n("v"), opts(&[("mode", "700")])).await.unwrap();
    assert_eq!(svc.get(&n("v")).unwrap().created_at, created);
    let e = svc.create(&n("v"), None).await.unwrap_err().to_string();
    assert!(
        e.contains("already exists") && e.contains("mode=700"),
        "{e}"
    );
}

#[tokio::test]
async fn mount_accounting_by_id() {
    let (svc, fake) = setup(&[]);
    svc.create(&n("v"), None).await.unwrap();
    fake.clear_calls();
    assert_eq!(
        svc.mount(&n("v"), &id("aaa")).await.unwrap(),
        "/mnt/volumes/v"
    );
    svc.mount(&n("v"), &id("aaa")).await.unwrap();
    svc.mount(&n("v"), &id("bbb")).await.unwrap();
    let binds = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("bind "))
        .count();
    assert_eq!(binds, 1, "mounted once: {:?}", fake.calls());
    assert_eq!(status_of(&svc, "v")["Mounts"], 3);
    assert_eq!(svc.path(&n("v")).unwrap(), "/mnt/volumes/v");

    let e = svc.remove(&n("v")).await.unwrap_err().to_string();
    assert!(
        e.contains("3 caller") && e.contains("aaa") && e.contains("bbb"),
        "{e}"
    );

    svc.unmount(&n("v"), &id("zzz")).await.unwrap();
    svc.unmount(&n("nope"), &id("aaa")).await.unwrap();
    svc.unmount(&n("v"), &id("aaa")).await.unwrap();
    svc.unmount(&n("v"), &id("aaa")).await.unwrap();
    assert!(fake.mounts().contains_key(Path::new("/mnt/volumes/v")));
    svc.unmount(&n("v"), &id("bbb")).await.unwrap();
    assert!(fake.mounts().is_empty());
    assert_eq!(svc.path(&n("v")).unwrap(), "");
    svc.unmount(&n("v"), &id("bbb")).await.unwrap();

    svc.remove(&n("v")).await.unwrap();
    assert!(fake
        .calls()
        .iter()
        .any(|c| c.starts_with("rename /data/v /data/.trash-v.")));
    assert!(fake.dir("/data/v").is_none());
    wait_for(|| {
        fake.calls()
            .iter()
            .any(|c| c.starts_with("remove_tree /data/.trash-v."))
    })
    .await;
    assert!(matches!(svc.get(&n("v")), Err(VolumeError::NotFound(_))));
}

#[tokio::test]
async fn failed_mount_records_no_reference() {
    let (svc, fake) = setup(&[]);
    svc.create(&n("v"), None).await.unwrap();
    fake.fail_nth(1);
    let e = svc
        .mount(&n("v"), &id("aaa"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("bind-mount") && e.contains("injected"), "{e}");
    assert_eq!(status_of(&svc, "v")["Mounts"], 0);
    svc.remove(&n("v")).await.unwrap();
}

#[tokio::test]
async fn tmpfs_mounts_with_size_and_owner() {
    let (svc, fake) = setup(&[]);
    svc.create(
        &n("t"),
        opts(&[
            ("type", "tmpfs"),
            ("size", "1m"),
            ("uid", "5"),
            ("mode", "1777"),
        ]),
    )
    .await
    .unwrap();
    assert!(fake.dir("/data/t").is_none(), "tmpfs has no data directory");
    svc.mount(&n("t"), &id("x")).await.unwrap();
    assert!(
        fake.calls()
            .iter()
            .any(|c| c == "mount_tmpfs /mnt/volumes/t size=1048576 uid=5 gid=- mode=1777"),
        "{:?}",
        fake.calls()
    );
    let s = status_of(&svc, "t");
    assert_eq!(s["SizeLimit"], "1.0MiB");
    assert_eq!(s["Backend"], "tmpfs");
    svc.unmount(&n("t"), &id("x")).await.unwrap();
    svc.remove(&n("t")).await.unwrap();
    assert!(!fake.calls().iter().any(|c| c.starts_with("remove_tree")));
}

fn host(fake: &FakeSys) {
    for d in ["/srv", "/srv/data", "/srv/data/sub", "/etc", "/other"] {
        fake.add_host_dir(d);
    }
    fake.add_host_link("/srv/escape", "/etc");
    fake.add_host_link("/srv/rel", "data/sub");
}

#[tokio::test]
async fn bind_prefixes_are_checked_on_the_resolved_path() {
    let (svc, fake) = setup(&["/srv"]);
    host(&fake);
    svc.create(&n("b"), opts(&[("type", "bind"), ("path", "/srv/data/")]))
        .await
        .unwrap();
    assert_eq!(status_of(&svc, "b")["HostPath"], "/srv/data");
    svc.create(&n("r"), opts(&[("type", "bind"), ("path", "/srv/rel")]))
        .await
        .unwrap();
    assert_eq!(status_of(&svc, "r")["HostPath"], "/srv/data/sub");
    for (path, needle) in [
        ("/srv/escape", "resolved to \"/etc\""),
        ("/srv/../etc", "not under an allowed host prefix"),
        ("/other", "allowed: /srv"),
        ("/srvx", "no such directory"),
        ("/srv/missing", "no such directory"),
    ] {
        let e = svc
            .create(&n("x"), opts(&[("type", "bind"), ("path", path)]))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{path}: {e}");
    }
    assert!(matches!(svc.get(&n("x")), Err(VolumeError::NotFound(_))));
    svc.mount(&n("b"), &id("id")).await.unwrap();
    assert!(fake
        .calls()
        .iter()
        .any(|c| c == "bind_host_dir /host /srv/data /mnt/volumes/b"));
    svc.unmount(&n("b"), &id("id")).await.unwrap();
    svc.remove(&n("b")).await.unwrap();
    assert!(
        !fake.calls().iter().any(|c| c.starts_with("remove_tree")),
        "bind data is never deleted"
    );
}

#[tokio::test]
async fn no_prefix_allows_no_bind() {
    let (svc, fake) = setup(&[]);
    host(&fake);
    let e = svc
        .create(&n("b"), opts(&[("type", "bind"), ("path", "/srv/data")]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("none (the setting is empty)"), "{e}");
}

#[tokio::test]
async fn counts_survive_a_restart_and_mounts_are_adopted_or_redone() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeSys::new());
    {
        let svc = build(Store::open(dir.path(), 1).unwrap(), &fake, &[]);
        svc.create(&n("a"), None).await.unwrap();
        svc.create(&n("b"), None).await.unwrap();
        svc.mount(&n("a"), &id("ida")).await.unwrap();
        svc.mount(&n("b"), &id("idb")).await.unwrap();
    }
    // Crash: the mount of "a" survived in the host namespace, the one of "b" did not.
    fake.release_mountpoint(Path::new("/mnt/volumes/b"))
        .unwrap();
    fake.clear_calls();
    let svc = build(Store::open(dir.path(), 1).unwrap(), &fake, &[]);
    // Get answers before reconciliation ran.
    assert_eq!(status_of(&svc, "a")["Mounts"], 1);
    svc.reconcile().await.unwrap();
    let calls = fake.calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("bind /data/a")),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c == "bind /data/b /mnt/volumes/b"),
        "{calls:?}"
    );
    svc.unmount(&n("a"), &id("ida")).await.unwrap();
    svc.unmount(&n("b"), &id("idb")).await.unwrap();
    assert!(fake.mounts().is_empty());
}

#[tokio::test]
async fn reconcile_keeps_volumes_with_missing_data_and_cleans_stale_mounts() {
    let (svc, fake) = setup(&[]);
    svc.create(&n("gone"), None).await.unwrap();
    svc.create(&n("idle"), None).await.unwrap();
    fake.remove_dir("/data/gone");
    fake.add_mount("/mnt/volumes/idle", "bind /data/idle");
    fake.add_mount("/mnt/volumes/ghost", "bind /data/ghost");
    fake.add_dir("/data/orphan");
    svc.reconcile().await.unwrap();
    assert!(fake.mounts().is_empty(), "{:?}", fake.mounts());
    assert!(
        fake.dir("/data/orphan").is_some(),
        "orphan data is never deleted"
    );
    // Never "not found" for a stored volume: the problem is in Status.
    let s = status_of(&svc, "gone");
    assert!(
        s["State"]
            .as_str()
            .unwrap()
            .contains("data directory /data/gone does not exist"),
        "{s:?}"
    );
    assert_eq!(svc.list().unwrap().len(), 2);
    let e = svc
        .mount(&n("gone"), &id("x"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("data missing"), "{e}");
    assert_eq!(status_of(&svc, "gone")["Mounts"], 0);
    // It can still be removed.
    svc.remove(&n("gone")).await.unwrap();
    assert_eq!(status_of(&svc, "idle")["State"], "ok");
}

#[tokio::test]
async fn usage_is_cached_after_last_unmount() {
    let (svc, fake) = setup(&[]);
    svc.create(&n("v"), None).await.unwrap();
    fake.add_dir("/data/v/sub");
    svc.mount(&n("v"), &id("x")).await.unwrap();
    svc.unmount(&n("v"), &id("x")).await.unwrap();
    let mut ok = false;
    for _ in 0..100 {
        if status_of(&svc, "v")["SizeUsedBytes"] == 8192 {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(ok, "{:?}", status_of(&svc, "v"));
}

#[tokio::test]
async fn list_scales() {
    let (svc, _) = setup(&[]);
    for i in 0..500 {
        svc.create(&n(&format!("v{i:04}")), None).await.unwrap();
    }
    let l = svc.list().unwrap();
    assert_eq!(l.len(), 500);
    assert_eq!(l[0].name, "v0000");
    assert_eq!(l[0].mountpoint, "/mnt/volumes/v0000");
    assert!(l.iter().all(|v| !v.created_at.is_empty()));
}

#[test]
fn prefix_matching_is_component_wise() {
    assert!(under_prefix("/srv/data", "/srv"));
    assert!(under_prefix("/srv", "/srv/"));
    assert!(!under_prefix("/srvx", "/srv"));
    assert!(under_prefix("/anything", "/"));
}

#[tokio::test]
async fn failed_unmount_still_releases_the_reference() {
    let (svc, fake) = setup(&[]);
    svc.create(&n("v"), None).await.unwrap();
    svc.mount(&n("v"), &id("a")).await.unwrap();
    fake.fail_nth(1);
    svc.unmount(&n("v"), &id("a")).await.unwrap();
    let s = status_of(&svc, "v");
    assert_eq!(s["Mounts"], 0);
    assert!(
        s["State"].as_str().unwrap().contains("cannot unmount"),
        "{s:?}"
    );
    // Remove retries the unmount, then deletes.
    svc.remove(&n("v")).await.unwrap();
    assert!(fake.mounts().is_empty());
}

#[tokio::test]
async fn list_reply_cache_follows_creates_and_removes() {
    let (svc, _) = setup(&[]);
    let names = |svc: &Service<FakeSys>| -> Vec<String> {
        let v: Value =
            serde_json::from_slice(&svc.list_encoded(crate::handlers::encode_list).unwrap())
                .unwrap();
        v["Volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["Name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(names(&svc).is_empty());
    svc.create(&n("a"), None).await.unwrap();
    assert_eq!(names(&svc), ["a"]);
    let first = svc.list_encoded(crate::handlers::encode_list).unwrap();
    assert!(
        Arc::ptr_eq(
            &first,
            &svc.list_encoded(crate::handlers::encode_list).unwrap()
        ),
        "cached"
    );
    svc.create(&n("b"), None).await.unwrap();
    assert_eq!(names(&svc), ["a", "b"]);
    svc.remove(&n("a")).await.unwrap();
    assert_eq!(names(&svc), ["b"]);
    let v: Value =
        serde_json::from_slice(&svc.list_encoded(crate::handlers::encode_list).unwrap()).unwrap();
    assert!(v["Volumes"][0]["CreatedAt"]
        .as_str()
        .unwrap()
        .starts_with("20"));
}

#[tokio::test]
async fn index_is_rebuilt_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeSys::new());
    {
        let svc = build(Store::open(dir.path(), 1).unwrap(), &fake, &[]);
        svc.create(&n("x"), None).await.unwrap();
        svc.create(&n("y"), None).await.unwrap();
    }
    let svc = build(Store::open(dir.path(), 1).unwrap(), &fake, &[]);
    let l = svc.list().unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!(l[1].name, "y");
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("condition not met in time");
}

#[tokio::test]
async fn interrupted_remove_is_repaired_at_start() {
    let (svc, fake) = setup(&[]);
    svc.create(&n("kept"), None).await.unwrap();
    fake.add_dir("/data/kept/file");
    // A crash after the data was moved aside but before the record was removed.
    fake.rename(Path::new("/data/kept"), Path::new("/data/.trash-kept.123"))
        .unwrap();
    // A crash after the record was removed but before the data was deleted.
    fake.add_dir("/data/.trash-gone.456");
    svc.reconcile().await.unwrap();
    assert!(fake.dir("/data/kept/file").is_some(), "data put back");
    assert_eq!(status_of(&svc, "kept")["State"], "ok");
    wait_for(|| fake.dir("/data/.trash-gone.456").is_none()).await;
}

/// Issue 10 (2): reconcile lists the known volumes, then settles trash; a Remove answered in
/// between must not get its data put back (and then adopted by a later Create of that name).
/// Reproduced deterministically by settling with the stale list after the Remove.
#[tokio::test]
async fn trash_of_a_volume_removed_during_reconcile_is_not_put_back() {
    let (svc, fake) = setup(&[]);
    svc.create(&n("v"), None).await.unwrap();
    fake.add_dir("/data/v/secret");
    // A crash left older trash of v while v stayed recorded ...
    fake.add_dir("/data/.trash-v.1");
    fake.add_dir("/data/.trash-v.1/old");
    // ... reconcile took its list of known volumes ...
    let stale_known = vec!["v".to_string()];
    // ... and a Remove was answered before the trash was settled.
    svc.remove(&n("v")).await.unwrap();
    wait_for(|| fake.dir("/data/v").is_none()).await;
    svc.settle_trash("v", ".trash-v.1", &stale_known).await;
    assert!(
        fake.dir("/data/v").is_none(),
        "removed volume's data came back"
    );
    wait_for(|| fake.dir("/data/.trash-v.1").is_none()).await;
    // A new volume of that name starts empty.
    svc.create(&n("v"), None).await.unwrap();
    assert!(fake.dir("/data/v/old").is_none());
    assert!(fake.dir("/data/v/secret").is_none());
}

/// Issue 10 (5): a Mount that arrives before reconcile has put back the data of an interrupted
/// remove puts it back itself instead of failing "data missing".
#[tokio::test]
async fn mount_before_reconcile_puts_back_interrupted_remove() {
    let (svc, fake) = setup(&[]);
    svc.create(&n("kept"), None).await.unwrap();
    fake.add_dir("/data/kept/file");
    fake.rename(Path::new("/data/kept"), Path::new("/data/.trash-kept.123"))
        .unwrap();
    let m = svc.mount(&n("kept"), &id("c1")).await.unwrap();
    assert!(m.ends_with("kept"), "{m}");
    assert!(fake.dir("/data/kept/file").is_some(), "data put back");
    assert!(fake.dir("/data/.trash-kept.123").is_none());
}

#[tokio::test]
async fn remove_with_failing_rename_keeps_everything() {
    let (svc, fake) = setup(&[]);
    svc.create(&n("v"), None).await.unwrap();
    fake.fail_nth(2); // release_mountpoint, then rename
    let e = svc.remove(&n("v")).await.unwrap_err().to_string();
    assert!(e.contains("move aside"), "{e}");
    assert!(fake.dir("/data/v").is_some());
    assert!(svc.get(&n("v")).is_ok());
}

#[test]
fn trash_names_round_trip() {
    let t = trash_name("my.vol-1");
    assert_eq!(trash_owner(&t), Some("my.vol-1"));
    assert_eq!(trash_owner("v1"), None);
    assert_eq!(trash_owner(".trash-"), None);
}

/// Issue 15 (5): empty or huge caller IDs are refused and record nothing; tmpfs sizes over
/// MAX_TMPFS_SIZE are refused and a tmpfs without `size` is capped by it.
#[tokio::test]
async fn ids_and_tmpfs_sizes_are_bounded() {
    let (svc, fake) = setup(&[]);
    svc.create(&n("v"), None).await.unwrap();
    // Refused before the service sees them (the handlers make every ID through this).
    assert!(CallerId::try_from("").is_err());
    assert!(CallerId::try_from("x".repeat(900_000)).is_err());
    assert!(CallerId::try_from("a\nb").is_err());
    assert!(fake.mounts().is_empty());
    let e = svc
        .create(&n("big"), opts(&[("type", "tmpfs"), ("size", "1p")]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("MAX_TMPFS_SIZE"), "{e}");
    assert!(svc.get(&n("big")).is_err());
    svc.create(&n("t"), opts(&[("type", "tmpfs")]))
        .await
        .unwrap();
    svc.mount(&n("t"), &id("c1")).await.unwrap();
    let calls = fake.calls().join("\n");
    assert!(
        calls.contains(&format!("size={}", 1u64 << 30)) || calls.contains("1073741824"),
        "{calls}"
    );
}
