fn main() -> std::process::ExitCode {
    skillcheck::cli::main()
}
