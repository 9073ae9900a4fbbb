//! A service's stdout and stderr, line by line, into the log: one tracing event per line with
//! the service name and stream as fields (`service = "xvfb"`, `stream = "stderr"`). Lines are
//! never split or merged; a line longer than [`MAX_LINE`] is cut with a
//! `[truncated N bytes]` marker; invalid UTF-8 is replaced lossily. Also feeds
//! `Readiness::Log` probes.

use std::os::fd::OwnedFd;

use regex::Regex;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;

/// Longest line logged as is; the rest of the line is counted and dropped.
pub const MAX_LINE: usize = 1 << 20;

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

/// Logs every line read from `fd` (a pipe) until end of stream. Run it as a task.
pub async fn pump(
    service: String,
    stream: Stream,
    fd: impl Into<OwnedFd>,
    watch: Option<LogWatch>,
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
        tracing::info!(target: "deskd::service", service = %service, stream = stream.as_str(), "{line}");
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn log_watch_matches_once() {
        let (w, rx) = LogWatch::new(Regex::new("ready on port \\d+").unwrap());
        w.check("starting");
        assert!(!*rx.borrow());
        w.check("ready on port 80");
        assert!(*rx.borrow());
    }
}
