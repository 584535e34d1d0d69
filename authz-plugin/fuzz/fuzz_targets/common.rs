//! Shared by the fuzz targets: services built once with the shipped example policy, under its
//! own profile (`baseline`) and under `restricted`.

use std::sync::{Arc, OnceLock};

use authz_plugin::policy::Builtins;
use authz_plugin::service::{Mode, Service, Settings};
use authz_plugin::sys::FakeSys;

/// The policy `make plugin-install` installs.
pub const EXAMPLE: &str = include_str!("../../../deploy/authz/policy.example.toml");

/// A service with `policy` (and no container records).
pub fn service(policy: &str) -> Service<FakeSys> {
    let sys = Arc::new(FakeSys::default());
    sys.set_policy(policy);
    Service::new(
        Settings {
            policy_path: "/policy/policy.toml".into(),
            mode: Mode::Enforce,
            audit: true,
            denials_only: true,
            builtins: Builtins {
                self_names: vec!["outboard-authz:latest".into()],
                self_id: Some("0123456789abcdef".repeat(4)),
                self_protection: true,
                allow_unknown_routes: false,
            },
        },
        sys,
    )
}

/// The example policy, and the same rules under `profile = "restricted"`.
pub fn services() -> &'static [Service<FakeSys>; 2] {
    static S: OnceLock<[Service<FakeSys>; 2]> = OnceLock::new();
    S.get_or_init(|| {
        let restricted = EXAMPLE.replace("profile = \"baseline\"", "profile = \"restricted\"");
        let s = [service(EXAMPLE), service(&restricted)];
        for x in &s {
            assert_ne!(x.policy().hash, "none", "the example policy must compile");
        }
        s
    })
}
