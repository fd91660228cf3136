//! What the benches share: a tokio runtime around the measuring code, and one line on failure.

use std::future::Future;
use std::process::ExitCode;

/// Runs `bench` on a multi-threaded runtime; a failure prints `NAME bench failed: ...`.
pub fn run<E: std::fmt::Display>(
    name: &str,
    bench: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name} bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
