//! `outboard-ipam`: the Outboard IPAM plugin binary. All wiring lives in `common`.

fn main() -> std::process::ExitCode {
    common::main::<ipam_driver::Plugin>()
}
