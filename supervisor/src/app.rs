//! `deskd run`: wires config, the supervisor and the HTTP server together.
//!
//! Order: raise the open-files limit ([`crate::fdlimit`]), load and validate the config (errors: print, exit 2, nothing started), make the
//! per-start neko token, start the reaper, then signals to the shutdown token and the
//! supervisor on one tokio runtime and the HTTP server on another (request work never
//! shares threads with supervision), until the supervisor finishes. SIGTERM, SIGINT and SIGHUP
//! all mean "stop everything and exit 0" (SIGHUP too: deskd has no config reload, and a hung-up
//! terminal should end a foreground deskd cleanly rather than kill it).

use std::path::PathBuf;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Settings};
use crate::reaper::Reaper;
use crate::signals::SignalEvents;
use crate::supervisor::{self, Snapshot};

/// Options of `deskd run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub configs: Vec<PathBuf>,
    pub conf_d: PathBuf,
    pub listen: Option<String>,
    pub main: Vec<String>,
}

/// Signals that stop deskd.
const STOP_SIGNALS: [i32; 3] = [nix::libc::SIGTERM, nix::libc::SIGINT, nix::libc::SIGHUP];

/// Runs until stopped; returns deskd's exit code.
pub fn run(opts: RunOptions) -> u8 {
    // Room for HTTP clients and services alike; services get the original limit back.
    match crate::fdlimit::raise() {
        Ok((from, to)) if from != to => {
            tracing::debug!(from, to, "raised the open-files limit")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("{e}"),
    }
    let mut settings = match config::load(&opts.configs, &opts.conf_d, &opts.main) {
        Ok(settings) => settings,
        Err(errors) => {
            eprintln!("deskd: invalid configuration:\n{errors}");
            return 2;
        }
    };
    if let Some(listen) = &opts.listen {
        match listen.parse() {
            Ok(addr) => settings.http.listen = addr,
            Err(err) => {
                eprintln!("deskd: --listen {listen:?}: {err}");
                return 2;
            }
        }
    }
    let neko_api_token = match random_token() {
        Ok(token) => token,
        Err(err) => {
            eprintln!("deskd: cannot generate the neko API token: {err}");
            return 1;
        }
    };
    let reaper = match Reaper::start() {
        Ok(reaper) => reaper,
        Err(err) => {
            eprintln!("deskd: {err}");
            return 1;
        }
    };
    // Supervision and HTTP on runtimes (threads) of their own: a flood of requests cannot
    // delay a restart, a readiness probe or the reaping of an exit.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(SUPERVISION_THREADS)
        .thread_name("deskd-supervise")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("deskd: cannot start the async runtime: {err}");
            return 1;
        }
    };
    let http_runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("deskd-http")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("deskd: cannot start the HTTP runtime: {err}");
            return 1;
        }
    };
    let code = runtime.block_on(run_async(
        settings,
        neko_api_token,
        reaper,
        http_runtime.handle().clone(),
    ));
    // In-flight requests had their chance while the services stopped.
    http_runtime.shutdown_timeout(HTTP_DRAIN);
    code
}

/// Threads of the supervision runtime.
const SUPERVISION_THREADS: usize = 2;
/// How long HTTP requests still running at exit may take to finish.
const HTTP_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

async fn run_async(
    settings: Settings,
    neko_api_token: String,
    reaper: Reaper,
    http: tokio::runtime::Handle,
) -> u8 {
    let shutdown = CancellationToken::new();
    let (status_tx, status_rx) = watch::channel(Snapshot::default());

    let mut signals = match SignalEvents::listen(&STOP_SIGNALS) {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("deskd: cannot listen for signals: {err}");
            return 1;
        }
    };
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        while let Some(sig) = signals.recv().await {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str())
                .unwrap_or("signal");
            if on_signal.is_cancelled() {
                tracing::info!("received {name}; already stopping");
            } else {
                tracing::info!("received {name}; stopping");
                on_signal.cancel();
            }
        }
    });

    let http_start = {
        let (settings, token, stop) = (settings.clone(), neko_api_token.clone(), shutdown.clone());
        http.spawn(async move { start_http(&settings, status_rx, &token, stop).await })
    };
    let neko_feed = match http_start.await {
        Ok(Ok(feed)) => feed,
        Ok(Err(err)) => {
            eprintln!("deskd: {err}");
            return 1;
        }
        Err(err) => {
            eprintln!("deskd: the HTTP server did not start: {err}");
            return 1;
        }
    };

    let specs = settings.all_services(&neko_api_token, neko_feed);
    let outcome = supervisor::supervise(specs, reaper, status_tx, shutdown.clone()).await;
    match &outcome {
        supervisor::Outcome::CriticalFailed { service, reason } => {
            tracing::error!(service = %service, "critical service failed: {reason}")
        }
        supervisor::Outcome::Invalid { message } => eprintln!("deskd: {message}"),
        _ => {}
    }
    // Stops the HTTP server too, if the supervisor ended on its own.
    shutdown.cancel();
    outcome.exit_code()
}

/// Starts serving `settings.http` (spawned, so this returns at once), reading service state
/// from `status` and stopping when `shutdown` is cancelled; returns where neko's video feed
/// listens, if it runs. An error (e.g. the port is taken) ends deskd with exit 1 before any
/// service starts.
async fn start_http(
    settings: &Settings,
    status: watch::Receiver<Snapshot>,
    neko_api_token: &str,
    shutdown: CancellationToken,
) -> Result<Option<std::net::SocketAddr>, String> {
    crate::http::start(settings, status, neko_api_token, shutdown)
        .await
        .map(|started| started.neko_feed)
}

/// 32 random bytes, hex-encoded.
fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
