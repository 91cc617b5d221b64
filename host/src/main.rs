//! The `sluice` command line: the edge where library errors get their context and
//! become exit codes (0 ok, 1 runtime failure, 2 usage or configuration error).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
