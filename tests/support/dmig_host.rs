fn main() -> std::process::ExitCode {
    dmig_host::cli::main()
}
