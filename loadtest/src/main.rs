//! `loadgen`: the load generator and driver of `make bench`.
//!
//! - `loadgen run`: closed- or open-loop HTTP/1.1 load over keep-alive connections, each
//!   bound to its User ID's 127.x.y.z source address; one JSON line per run.
//! - `loadgen gen-config`: a synthetic Gerbang configuration with N PKS and M User IDs.
//! - `loadgen bench`: everything `make bench` measures, as a markdown report.
#![forbid(unsafe_code)]

mod bench;
mod client;
mod genconf;
mod mix;
mod procs;
mod run;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load generator and benchmark driver for Gerbang"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send load to one target for a fixed time and print one JSON line.
    Run(run::RunArgs),
    /// Write a synthetic configuration: gerbang.toml, pks/*.toml and users.tsv.
    GenConfig(genconf::GenArgs),
    /// Run the whole benchmark (what `make bench` does after building).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run(args) => run::run(args).map(|r| println!("{}", r.json)),
        Cmd::GenConfig(args) => genconf::generate(&args).map(|path| {
            println!(
                "wrote {} ({} PKS, {} User IDs; users.tsv beside it)",
                path.display(),
                args.pks,
                args.users
            );
        }),
        Cmd::Bench(args) => bench::bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
