fn main() -> std::process::ExitCode {
    floe::main()
}
