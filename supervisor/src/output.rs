//! A service's stdout and stderr, line by line, into the log: one tracing event per line with
//! the service name and stream as fields (`service = "xvfb"`, `stream = "stderr"`). Lines are
//! never split or merged; a line longer than [`MAX_LINE`] is cut with a
//! `[truncated N bytes]` marker; invalid UTF-8 is replaced lossily. Also feeds
//! `Readiness::Log` probes (every line, logged or not).
//!
//! No service can flood the log: a service's stdout and stderr share one [`LogBudget`]
//! (token buckets of [`RATE_LINES`] lines and [`RATE_BYTES`] bytes per second, with bursts of
//! ten seconds' worth). Lines over it are dropped; the first drop is announced, and when
//! lines pass again (or the output ends) one line says how many lines and bytes were dropped.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use regex::Regex;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;

/// Longest line logged as is; the rest of the line is counted and dropped.
pub const MAX_LINE: usize = 1 << 20;

/// Lines per second a service may log (sustained; bursts of ten times as many pass).
pub const RATE_LINES: u64 = 500;
/// Bytes per second a service may log (sustained; bursts of ten times as many pass).
pub const RATE_BYTES: u64 = 256 << 10;
const BURST: u64 = 10;

/// What a budget decided for one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Log it; `dropped` lines and bytes were dropped before it (`(0, 0)`: none).
    Pass { dropped: (u64, u64) },
    /// Drop it; `first` for the first line of a run of drops.
    Drop { first: bool },
}

/// Token buckets for one service's output, shared by its stdout and stderr.
#[derive(Debug)]
pub struct LogBudget {
    inner: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    lines: f64,
    bytes: f64,
    last: Instant,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl LogBudget {
    /// A full budget of [`RATE_LINES`] and [`RATE_BYTES`].
    pub fn new() -> Arc<LogBudget> {
        Arc::new(LogBudget {
            inner: Mutex::new(Buckets {
                lines: (RATE_LINES * BURST) as f64,
                bytes: (RATE_BYTES * BURST) as f64,
                last: Instant::now(),
                dropped_lines: 0,
                dropped_bytes: 0,
            }),
        })
    }

    /// Whether a line of `len` bytes may be logged at `now`.
    pub fn admit(&self, len: usize, now: Instant) -> Admit {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.last = now.max(b.last);
        b.lines = (b.lines + elapsed * RATE_LINES as f64).min((RATE_LINES * BURST) as f64);
        b.bytes = (b.bytes + elapsed * RATE_BYTES as f64).min((RATE_BYTES * BURST) as f64);
        // A line longer than the whole burst passes once the bucket is full.
        let cost = (len as f64).min((RATE_BYTES * BURST) as f64);
        if b.lines >= 1.0 && b.bytes >= cost {
            b.lines -= 1.0;
            b.bytes -= cost;
            let dropped = (b.dropped_lines, b.dropped_bytes);
            (b.dropped_lines, b.dropped_bytes) = (0, 0);
            Admit::Pass { dropped }
        } else {
            b.dropped_lines += 1;
            b.dropped_bytes += len as u64;
            Admit::Drop {
                first: b.dropped_lines == 1,
            }
        }
    }

    /// Lines and bytes dropped since the last line that passed; resets the count.
    pub fn take_dropped(&self) -> (u64, u64) {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let dropped = (b.dropped_lines, b.dropped_bytes);
        (b.dropped_lines, b.dropped_bytes) = (0, 0);
        dropped
    }
}

fn log_dropped(service: &str, (lines, bytes): (u64, u64)) {
    if lines > 0 {
        tracing::warn!(
            service = %service,
            dropped_lines = lines,
            dropped_bytes = bytes,
            "{lines} lines ({bytes} bytes) of output dropped: over the log rate limit"
        );
    }
}

/// Which output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Watches output lines for a `Readiness::Log` pattern; flips to `true` on the first match.
#[derive(Clone)]
pub struct LogWatch {
    pattern: Regex,
    matched: watch::Sender<bool>,
}

impl LogWatch {
    /// The watch and the receiver a probe waits on.
    pub fn new(pattern: Regex) -> (LogWatch, watch::Receiver<bool>) {
        let (matched, rx) = watch::channel(false);
        (LogWatch { pattern, matched }, rx)
    }

    fn check(&self, line: &str) {
        if !*self.matched.borrow() && self.pattern.is_match(line) {
            self.matched.send_replace(true);
        }
    }
}

/// Splits a byte stream into lines, capping each at `max` bytes.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    line: Vec<u8>,
    /// Bytes of the current line dropped beyond `max`.
    dropped: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        LineSplitter {
            max,
            line: Vec::new(),
            dropped: 0,
        }
    }

    /// Feeds bytes; calls `emit` for every complete line (without its `\n`).
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(String)) {
        while !data.is_empty() {
            let (chunk, rest, complete) = match data.iter().position(|&b| b == b'\n') {
                Some(pos) => (&data[..pos], &data[pos + 1..], true),
                None => (data, &data[data.len()..], false),
            };
            let room = self.max - self.line.len();
            let take = room.min(chunk.len());
            self.line.extend_from_slice(&chunk[..take]);
            self.dropped += chunk.len() - take;
            if complete {
                emit(self.take_line());
            }
            data = rest;
        }
    }

    /// At end of stream: the last line, if it did not end with `\n`.
    pub fn finish(&mut self) -> Option<String> {
        if self.line.is_empty() && self.dropped == 0 {
            None
        } else {
            Some(self.take_line())
        }
    }

    fn take_line(&mut self) -> String {
        let mut text = String::from_utf8_lossy(&self.line).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!(" [truncated {} bytes]", self.dropped));
        }
        self.line.clear();
        self.dropped = 0;
        text
    }
}

/// Logs every line read from `fd` (a pipe) until end of stream, within `budget` (shared
/// with the service's other stream). Run it as a task.
pub async fn pump(
    service: String,
    stream: Stream,
    fd: impl Into<OwnedFd>,
    watch: Option<LogWatch>,
    budget: Arc<LogBudget>,
) {
    let mut reader = match pipe::Receiver::from_owned_fd(fd.into()) {
        Ok(reader) => reader,
        Err(err) => {
            tracing::warn!(service = %service, stream = stream.as_str(), "cannot read output: {err}");
            return;
        }
    };
    let mut splitter = LineSplitter::new(MAX_LINE);
    let mut buf = vec![0u8; 64 * 1024];
    let emit = |line: String| {
        if let Some(w) = &watch {
            w.check(&line);
        }
        match budget.admit(line.len(), Instant::now()) {
            Admit::Pass { dropped } => {
                log_dropped(&service, dropped);
                tracing::info!(target: "deskd::service", service = %service, stream = stream.as_str(), "{line}");
            }
            Admit::Drop { first: true } => tracing::warn!(
                service = %service,
                "output over the log rate limit ({RATE_LINES} lines/s, {} KiB/s); dropping lines",
                RATE_BYTES >> 10
            ),
            Admit::Drop { first: false } => {}
        }
    };
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => splitter.feed(&buf[..n], emit),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                tracing::debug!(service = %service, stream = stream.as_str(), "output read error: {err}");
                break;
            }
        }
    }
    if let Some(line) = splitter.finish() {
        emit(line);
    }
    log_dropped(&service, budget.take_dropped());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |l| out.push(l));
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn lines_across_chunks_are_neither_split_nor_merged() {
        assert_eq!(
            split(100, &[b"hel", b"lo\nwor", b"ld\n\nlast"]),
            ["hello", "world", "", "last"]
        );
    }

    #[test]
    fn long_lines_are_truncated_with_a_marker() {
        assert_eq!(
            split(4, &[b"abcdefgh", b"ij\nxy\n"]),
            ["abcd [truncated 6 bytes]", "xy"]
        );
    }

    #[test]
    fn invalid_utf8_is_lossy() {
        assert_eq!(split(100, &[b"a\xffb\n"]), ["a\u{fffd}b"]);
    }

    #[test]
    fn budget_drops_a_flood_and_counts_it() {
        let budget = LogBudget::new();
        let t0 = Instant::now();
        let line = 1 << 20;
        // The burst: ten seconds' worth of bytes, in 1 MiB lines.
        let burst = (RATE_BYTES * BURST) as usize / line;
        for _ in 0..burst {
            assert_eq!(budget.admit(line, t0), Admit::Pass { dropped: (0, 0) });
        }
        assert_eq!(budget.admit(line, t0), Admit::Drop { first: true });
        for _ in 0..49 {
            assert_eq!(budget.admit(line, t0), Admit::Drop { first: false });
        }
        // A second later there is room for a short line, which reports the drops.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            budget.admit(10, later),
            Admit::Pass {
                dropped: (50, 50 << 20)
            }
        );
        assert_eq!(budget.take_dropped(), (0, 0));
        // Many short lines: the line budget applies too.
        let mut passed = 0;
        for _ in 0..100_000 {
            if matches!(budget.admit(1, later), Admit::Pass { .. }) {
                passed += 1;
            }
        }
        assert!(passed <= (RATE_LINES * BURST) as usize, "{passed}");
    }

    #[test]
    fn log_watch_matches_once() {
        let (w, rx) = LogWatch::new(Regex::new("ready on port \\d+").unwrap());
        w.check("starting");
        assert!(!*rx.borrow());
        w.check("ready on port 80");
        assert!(*rx.borrow());
    }
}
