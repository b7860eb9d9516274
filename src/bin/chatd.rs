//! `chatd`: the chat daemon. Parses flags, sets up logging, binds, and runs
//! the reactor until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use log::{error, info, warn};

use chatd::config::Args;
use chatd::reactor::Server;

/// Raises the soft limit on open files to the hard one: every client is a
/// file descriptor, and the default soft limit (often 1024) would cap the
/// server far below `--max-clients`.
fn raise_open_file_limit(max_clients: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        warn!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            warn!(
                "cannot raise the open-file limit: {}",
                std::io::Error::last_os_error()
            );
            limit.rlim_cur = before;
        }
    }
    info!(
        "open-file limit: {} (was {before}, hard limit {})",
        limit.rlim_cur, limit.rlim_max
    );
    // Listeners, the poll, the database and a little slack need files too.
    let room = (limit.rlim_cur as usize).saturating_sub(64);
    if max_clients == 0 || max_clients > room {
        warn!(
            "--max-clients {max_clients} is above what the open-file limit allows (about {room})"
        );
    }
}

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
    raise_open_file_limit(config.max_clients);
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
