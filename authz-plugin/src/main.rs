//! `outboard-authz`: the Outboard authorization plugin binary. All wiring lives in `common`.

fn main() -> std::process::ExitCode {
    common::main::<authz_plugin::Plugin>()
}
