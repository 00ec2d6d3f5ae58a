//! The real `ami` program, built inside the tests crate so that its
//! integration tests find it at `env!("CARGO_BIN_EXE_ami-under-test")`.

fn main() -> std::process::ExitCode {
    ami_service::cli::main()
}
