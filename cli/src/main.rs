//! `fota`: a thin command line over the fota libraries.
//!
//! Exit codes: 0 success; 1 a package or image was refused (signature, hash,
//! device, malformed bytes); 2 any other error (usage, files, keys).
#![forbid(unsafe_code)]

mod args;
mod commands;
mod export;
mod flash;
mod human;
mod server;
mod sim;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The process is ours: its large buffers go back when freed.
    fota_generator::memory::map_large_allocations();
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the whole context chain, "file: what: detail".
            eprintln!("error: {err:#}");
            let refused = err
                .chain()
                .any(|e| e.downcast_ref::<fota_format::Error>().is_some());
            ExitCode::from(if refused { 1 } else { 2 })
        }
    }
}
