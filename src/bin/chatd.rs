//! `chatd`: the chat daemon. Parses flags, sets up logging, binds, and runs
//! the reactor until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use log::{error, info};

use chatd::config::Args;
use chatd::reactor::Server;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = simple_logger::SimpleLogger::new()
        .with_level(args.log_level)
        .with_utc_timestamps()
        .init()
    {
        eprintln!("chatd: cannot set up logging: {e}");
    }
    let config = match args.to_config() {
        Ok(config) => config,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = server.watch_signals() {
        error!("cannot watch signals: {e}");
        return ExitCode::FAILURE;
    }
    for (addr, dialect) in server.local_addrs() {
        info!("chatd {} listening on {addr} ({dialect})", chatd::VERSION);
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("reactor failed: {e}");
            ExitCode::FAILURE
        }
    }
}
