//! `dmig-host`: see `dmig-host --help`, and the README for exit codes.

fn main() -> std::process::ExitCode {
    dmig_host::cli::main()
}
