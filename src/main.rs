//! The `scansync` binary: parse the command line, hand over to [`scansync::cli`].

fn main() -> std::process::ExitCode {
    scansync::cli::main()
}
