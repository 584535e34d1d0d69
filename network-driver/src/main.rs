//! `outboard-network`: the Outboard network plugin binary. All wiring lives in `common`.

fn main() -> std::process::ExitCode {
    common::main::<network_driver::Plugin>()
}
