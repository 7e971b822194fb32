//! The `tracebudget` binary: the command line is [`tracebudget::cli`].

use std::process::ExitCode;

/// Decoding allocates many small buffers per span; mimalloc serves them well faster than glibc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracebudget::cli::main()
}
