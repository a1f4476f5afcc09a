//! The `waggle` binary. Everything lives in the library; see `cli.rs`.

/// mimalloc: the proxy allocates and frees many small, short-lived objects per request (header
/// maps, futures, buffers); glibc's allocator cost about 8 % of CPU time under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    waggle::cli::main()
}
