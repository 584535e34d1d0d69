//! `outboard`: see and repair the state of the installed Outboard plugins. All logic lives in
//! the library so it can be unit tested.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::ExitCode::from(outboard_cli::run(&args))
}
