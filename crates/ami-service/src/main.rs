//! The `ami` program; everything it does lives in [`ami_service::cli`].

fn main() -> std::process::ExitCode {
    ami_service::cli::main()
}
