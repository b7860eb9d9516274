//! chatd: a fast, lightweight chat server with a plain line protocol.
//!
//! One thread runs a [mio] reactor; a pure state machine decides what every
//! command means; dialects turn bytes into commands and events back into bytes.
//!
//! # Layout
//! Imports only point down this list, so each layer can be read and tested on
//! its own:
//!
//! | module | owns |
//! |---|---|
//! | [`reactor`] | the mio loop: listeners and connections in a slab, read buffers, bounded write queues, timers, signals; applies the core's actions |
//! | [`dialect`] | [`dialect::line`]: parses client lines into commands, renders events into bytes; [`dialect::irc`]: the IRC message format (parser and writer; not served yet) |
//! | [`core`] | the pure state machine: users, rooms, messages; no I/O, no clock |
//! | [`framing`] | the bounded `\n` line splitter |
//! | [`config`] | command-line flags and defaults |
//!
//! Binaries live in `src/bin/`: `chatd` (the daemon) and `chat` (the terminal client).
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(unreachable_pub)]

pub mod auth;
pub mod config;
pub mod core;
pub mod dialect;
pub mod framing;
pub mod reactor;
pub mod store;

/// The version every binary and the `HELLO` line report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
