//! Log setup: human or JSON on stderr, or journald under systemd.
//!
//! - The level filter comes from `DESKD_LOG` (tracing's env-filter syntax, e.g. `debug` or
//!   `info,deskd::http=debug`); unset means `info`, an invalid value falls back to `info`
//!   with a warning.
//! - `--log journald`, or `--log auto` when systemd connected our stderr to the journal
//!   (`JOURNAL_STREAM` names the device and inode of fd 2), sends records to journald with
//!   their fields. If journald cannot be reached, logs go to stderr and a warning says why.
//! - Everything is synchronous: no thread, no buffer to lose on exit (single-command mode uses
//!   this too and must stay as light as tini).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Environment variable holding the log filter.
pub const FILTER_ENV: &str = "DESKD_LOG";

/// Filter used when `DESKD_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info";

/// Format of logs on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Where logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogTarget {
    /// journald when `JOURNAL_STREAM` is set, else stderr.
    Auto,
    Stderr,
    Journald,
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber; keep the guard alive for the life of the program.
/// Calling it again (tests) keeps the first subscriber.
pub fn init(format: LogFormat, target: LogTarget) -> LogGuard {
    let mut warnings = Vec::new();
    let filter = match filter_from(std::env::var(FILTER_ENV).ok().as_deref()) {
        Ok(f) => f,
        Err(message) => {
            warnings.push(message);
            EnvFilter::new(DEFAULT_FILTER)
        }
    };
    let to_journald = match target {
        LogTarget::Journald => true,
        LogTarget::Stderr => false,
        LogTarget::Auto => stderr_is_journal(std::env::var(JOURNAL_STREAM).ok().as_deref()),
    };
    let layer: BoxedLayer = if to_journald {
        match tracing_journald::layer() {
            Ok(layer) => layer.with_syslog_identifier("deskd".to_string()).boxed(),
            Err(e) => {
                warnings.push(format!(
                    "journald is not reachable ({e}); logging to stderr instead"
                ));
                stderr_layer(format)
            }
        }
    } else {
        stderr_layer(format)
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
    for w in warnings {
        tracing::warn!("{w}");
    }
    LogGuard {}
}

/// Flushes logs on drop. Every writer is unbuffered today, so this only marks the scope in
/// which logging is set up; it exists so a buffered writer can be added without touching
/// callers.
pub struct LogGuard {}

/// Set by systemd when stdout/stderr are connected to the journal: `DEVICE:INODE`.
const JOURNAL_STREAM: &str = "JOURNAL_STREAM";

fn stderr_layer(format: LogFormat) -> BoxedLayer {
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Human => layer
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .boxed(),
        LogFormat::Json => layer
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
    }
}

/// The filter for a `DESKD_LOG` value; an invalid one is an error message.
fn filter_from(value: Option<&str>) -> Result<EnvFilter, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(EnvFilter::new(DEFAULT_FILTER)),
        Some(v) => EnvFilter::try_new(v).map_err(|e| {
            format!("{FILTER_ENV}={v:?} is not a valid log filter ({e}); using {DEFAULT_FILTER:?}")
        }),
    }
}

/// Whether `JOURNAL_STREAM` names our own stderr (it is inherited by children whose stderr
/// may be something else, so being set is not enough).
fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(parse_journal_stream) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

/// `"DEVICE:INODE"` in decimal.
fn parse_journal_stream(value: &str) -> Option<(nix::libc::dev_t, nix::libc::ino_t)> {
    let (dev, ino) = value.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_our_stderr() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("a:b"), None);
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage")));
        let st = match nix::sys::stat::fstat(std::io::stderr()) {
            Ok(st) => st,
            Err(e) => panic!("fstat(stderr): {e}"),
        };
        let ours = format!("{}:{}", st.st_dev, st.st_ino);
        assert!(stderr_is_journal(Some(&ours)));
        let other = format!("{}:{}", st.st_dev, st.st_ino.wrapping_add(1));
        assert!(!stderr_is_journal(Some(&other)));
    }

    #[test]
    fn filters() {
        assert!(filter_from(None).is_ok());
        assert!(filter_from(Some("")).is_ok());
        assert!(filter_from(Some("debug")).is_ok());
        assert!(filter_from(Some("info,deskd::http=trace")).is_ok());
        let bad = filter_from(Some("info,[[[=")).map(|_| ());
        assert!(matches!(&bad, Err(m) if m.contains(FILTER_ENV)), "{bad:?}");
    }
}
