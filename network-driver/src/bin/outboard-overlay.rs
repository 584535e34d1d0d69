//! `outboard-overlay`: the swarm (global-scope) VXLAN mode of the network driver.

fn main() -> std::process::ExitCode {
    common::main::<network_driver::overlay::Plugin>()
}
