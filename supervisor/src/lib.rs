//! deskd: the PID-1 supervisor of a browser-streamed Linux desktop.
//!
//! The crate is a library so that integration tests and benchmarks can drive each piece on
//! real processes; `main.rs` is only argument parsing and dispatch.
//!
//! Layout (each module owns one job):
//! - [`config`]: TOML files to validated [`service::ServiceSpec`]s; no processes, no I/O but reading files.
//! - [`plan`]: the dependency graph: start order, stop order, dependents. Pure.
//! - [`reaper`], [`signals`], [`process`], [`output`]: the process-level mechanics.
//! - [`readiness`]: probes that say a started service is really up.
//! - [`supervisor`]: the per-service state machine (start, ready, restart, cascade, stop).
//! - [`single`]: tini-compatible single-command mode.
//! - [`display`], [`neko`]: built-in services derived from `[display]` and `[neko]`.
//! - [`http`]: the one HTTP port: viewer, signaling relay, health, metrics, agent API.
//! - [`desktop`]: direct X11 access for the agent API (screenshots, input, clipboard, windows).
//! - [`stream`]: the native stream: capture, H.264 encode once per display, viewers, input.
//! - [`app`]: wires config, supervisor and HTTP together for `deskd run`.

pub mod app;
pub mod check;
pub mod config;
pub mod ctl;
pub mod desktop;
pub mod display;
pub mod fdlimit;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod neko;
pub mod neko_feed;
pub mod output;
pub mod plan;
pub mod process;
pub mod readiness;
pub mod reaper;
pub mod service;
pub mod signals;
pub mod single;
pub mod stream;
pub mod supervisor;
pub mod workers;
