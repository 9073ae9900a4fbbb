//! Counters fed by the relay, the native stream and the HTTP layer, rendered with the supervisor's snapshot in
//! Prometheus text format. Never drives behaviour.
//!
//! Everything is a relaxed atomic: the figures are for humans and scrapers, nothing reads
//! them to decide anything, so no ordering between counters is promised.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::supervisor::{ServiceState, Snapshot};

/// Why a relay connection was refused or cut short (one counter each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No or wrong token.
    Unauthorized,
    /// A view token on a control route.
    Forbidden,
    /// WebSocket upgrade from an Origin not on the allow-list.
    Origin,
    /// neko is not ready (starting, restarting, not configured).
    NotReady,
    /// `max_clients` relays already open.
    TooManyClients,
    /// A message larger than `max_frame_bytes`.
    TooBig,
    /// The browser stopped reading and its queue stayed full too long.
    SlowClient,
    /// Logging in to neko or opening its WebSocket failed.
    NekoError,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::Unauthorized,
        Refusal::Forbidden,
        Refusal::Origin,
        Refusal::NotReady,
        Refusal::TooManyClients,
        Refusal::TooBig,
        Refusal::SlowClient,
        Refusal::NekoError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::Forbidden => "forbidden",
            Refusal::Origin => "origin",
            Refusal::NotReady => "not_ready",
            Refusal::TooManyClients => "too_many_clients",
            Refusal::TooBig => "too_big",
            Refusal::SlowClient => "slow_client",
            Refusal::NekoError => "neko_error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Direction of relayed traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Browser to neko.
    ToNeko,
    /// neko to browser.
    ToBrowser,
}

/// Relay and HTTP counters.
#[derive(Default)]
pub struct Metrics {
    relay_current: AtomicU64,
    relay_total: AtomicU64,
    frames: [AtomicU64; 2],
    bytes: [AtomicU64; 2],
    /// Messages from view-only clients that the relay dropped (`control/*` and the like).
    dropped_view_only: AtomicU64,
    refusals: [AtomicU64; Refusal::ALL.len()],
    http_requests: AtomicU64,
    stream: StreamCounters,
}

/// The native stream's counters (`deskd_stream_*`, `transport="ws"`).
#[derive(Default)]
struct StreamCounters {
    viewers: AtomicU64,
    viewers_total: AtomicU64,
    /// Encoded frames: [delta, key].
    encoded: [AtomicU64; 2],
    encoded_bytes: AtomicU64,
    encode_us: AtomicU64,
    /// Video frames written to viewers' sockets (one per viewer per frame).
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    /// Tiles (small changes ahead of the video) given to viewers, and their bytes.
    tiles: AtomicU64,
    tile_bytes: AtomicU64,
    images: AtomicU64,
    image_bytes: AtomicU64,
    image_us: AtomicU64,
    /// Round trips to the X server for the pointer position.
    pointer_polls: AtomicU64,
    /// Frames a slow viewer skipped.
    dropped: AtomicU64,
    /// Input messages refused (view-only clients).
    refused: AtomicU64,
}

/// Decrements the native-viewer gauge when dropped.
pub struct StreamViewerGuard<'a> {
    metrics: &'a Metrics,
}

impl Drop for StreamViewerGuard<'_> {
    fn drop(&mut self) {
        self.metrics.stream.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decrements the open-relay gauge when dropped, so a panicking or cancelled relay task
/// still leaves the gauge right.
pub struct RelayGuard<'a> {
    metrics: &'a Metrics,
}

impl Drop for RelayGuard<'_> {
    fn drop(&mut self) {
        self.metrics.relay_current.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a relay as open until the guard is dropped.
    pub fn relay_opened(&self) -> RelayGuard<'_> {
        self.relay_current.fetch_add(1, Ordering::Relaxed);
        self.relay_total.fetch_add(1, Ordering::Relaxed);
        RelayGuard { metrics: self }
    }

    /// One relayed message of `len` payload bytes.
    pub fn relayed(&self, dir: Direction, len: usize) {
        let i = dir as usize;
        self.frames[i].fetch_add(1, Ordering::Relaxed);
        self.bytes[i].fetch_add(len as u64, Ordering::Relaxed);
    }

    pub fn dropped_view_only(&self) {
        self.dropped_view_only.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, why: Refusal) {
        self.refusals[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn http_request(&self) {
        self.http_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a native-stream viewer as connected until the guard is dropped.
    pub fn stream_viewer_opened(&self) -> StreamViewerGuard<'_> {
        self.stream.viewers.fetch_add(1, Ordering::Relaxed);
        self.stream.viewers_total.fetch_add(1, Ordering::Relaxed);
        StreamViewerGuard { metrics: self }
    }

    /// One frame encoded in `took`, `bytes` long.
    pub fn stream_encoded(&self, key: bool, took: std::time::Duration, bytes: usize) {
        let s = &self.stream;
        s.encoded[usize::from(key)].fetch_add(1, Ordering::Relaxed);
        s.encoded_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        s.encode_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// One message of `bytes` written to a native viewer; `video` if it was a video frame.
    pub fn stream_sent(&self, video: bool, bytes: usize) {
        if video {
            self.stream.frames_sent.fetch_add(1, Ordering::Relaxed);
        }
        self.stream
            .bytes_sent
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A tile of `bytes` given to `viewers` viewers.
    pub fn stream_tile(&self, viewers: usize, bytes: usize) {
        let s = &self.stream;
        s.tiles.fetch_add(viewers as u64, Ordering::Relaxed);
        s.tile_bytes
            .fetch_add((viewers * bytes) as u64, Ordering::Relaxed);
    }

    /// One JPEG image (for viewers without WebCodecs) encoded in `took`, `bytes` long.
    pub fn stream_image(&self, took: std::time::Duration, bytes: usize) {
        let s = &self.stream;
        s.images.fetch_add(1, Ordering::Relaxed);
        s.image_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        s.image_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The pointer position was asked of the X server once.
    pub fn stream_pointer_polled(&self) {
        self.stream.pointer_polls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_dropped(&self) {
        self.stream.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_refused(&self) {
        self.stream.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Frames encoded since start (key and delta).
    pub fn stream_frames_encoded(&self) -> u64 {
        self.stream
            .encoded
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Relays open right now.
    pub fn relay_current(&self) -> u64 {
        self.relay_current.load(Ordering::Relaxed)
    }

    /// Relays opened since start.
    pub fn relay_total(&self) -> u64 {
        self.relay_total.load(Ordering::Relaxed)
    }

    pub fn refusals(&self, why: Refusal) -> u64 {
        self.refusals[why.index()].load(Ordering::Relaxed)
    }

    pub fn frames(&self, dir: Direction) -> u64 {
        self.frames[dir as usize].load(Ordering::Relaxed)
    }

    pub fn bytes(&self, dir: Direction) -> u64 {
        self.bytes[dir as usize].load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of the counters and of `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

        header(
            &mut out,
            "deskd_service_state",
            "gauge",
            "1 for the state each service is in, 0 for the others.",
        );
        for s in &snapshot.services {
            for state in ServiceState::ALL {
                let v = u8::from(s.state == state);
                let _ = writeln!(
                    out,
                    "deskd_service_state{{service=\"{}\",state=\"{}\"}} {v}",
                    escape(&s.name),
                    state.as_str()
                );
            }
        }
        header(
            &mut out,
            "deskd_service_up",
            "gauge",
            "1 when the service is ready (or a one-shot that completed).",
        );
        for s in &snapshot.services {
            let v = u8::from(s.state.is_up());
            let _ = writeln!(
                out,
                "deskd_service_up{{service=\"{}\"}} {v}",
                escape(&s.name)
            );
        }
        header(
            &mut out,
            "deskd_service_restarts_total",
            "counter",
            "Restarts since deskd started.",
        );
        for s in &snapshot.services {
            let _ = writeln!(
                out,
                "deskd_service_restarts_total{{service=\"{}\"}} {}",
                escape(&s.name),
                s.restarts
            );
        }
        header(
            &mut out,
            "deskd_service_generation",
            "gauge",
            "Starts of the service so far.",
        );
        for s in &snapshot.services {
            let _ = writeln!(
                out,
                "deskd_service_generation{{service=\"{}\"}} {}",
                escape(&s.name),
                s.generation
            );
        }
        header(
            &mut out,
            "deskd_ready",
            "gauge",
            "1 when every critical service is ready.",
        );
        let _ = writeln!(
            out,
            "deskd_ready {}",
            u8::from(snapshot.not_ready_critical().is_empty())
        );

        header(
            &mut out,
            "deskd_relay_connections",
            "gauge",
            "Signaling relays open now.",
        );
        let _ = writeln!(out, "deskd_relay_connections {}", load(&self.relay_current));
        header(
            &mut out,
            "deskd_relay_connections_total",
            "counter",
            "Signaling relays opened.",
        );
        let _ = writeln!(
            out,
            "deskd_relay_connections_total {}",
            load(&self.relay_total)
        );
        header(
            &mut out,
            "deskd_relay_frames_total",
            "counter",
            "WebSocket messages relayed.",
        );
        for (dir, name) in [
            (Direction::ToNeko, "to_neko"),
            (Direction::ToBrowser, "to_browser"),
        ] {
            let _ = writeln!(
                out,
                "deskd_relay_frames_total{{direction=\"{name}\"}} {}",
                load(&self.frames[dir as usize])
            );
        }
        header(
            &mut out,
            "deskd_relay_bytes_total",
            "counter",
            "Payload bytes relayed.",
        );
        for (dir, name) in [
            (Direction::ToNeko, "to_neko"),
            (Direction::ToBrowser, "to_browser"),
        ] {
            let _ = writeln!(
                out,
                "deskd_relay_bytes_total{{direction=\"{name}\"}} {}",
                load(&self.bytes[dir as usize])
            );
        }
        header(
            &mut out,
            "deskd_relay_view_only_dropped_total",
            "counter",
            "Messages from view-only clients dropped because they would control the desktop.",
        );
        let _ = writeln!(
            out,
            "deskd_relay_view_only_dropped_total {}",
            load(&self.dropped_view_only)
        );
        header(
            &mut out,
            "deskd_refusals_total",
            "counter",
            "Requests or relays refused, by reason.",
        );
        for why in Refusal::ALL {
            let _ = writeln!(
                out,
                "deskd_refusals_total{{reason=\"{}\"}} {}",
                why.as_str(),
                load(&self.refusals[why.index()])
            );
        }
        self.render_stream(&mut out);
        header(
            &mut out,
            "deskd_http_requests_total",
            "counter",
            "HTTP requests received.",
        );
        let _ = writeln!(
            out,
            "deskd_http_requests_total {}",
            load(&self.http_requests)
        );
        out
    }
}

impl Metrics {
    fn render_stream(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let s = &self.stream;
        header(
            out,
            "deskd_viewers",
            "gauge",
            "Viewers connected now, by transport.",
        );
        let _ = writeln!(
            out,
            "deskd_viewers{{transport=\"ws\"}} {}",
            load(&s.viewers)
        );
        let _ = writeln!(
            out,
            "deskd_viewers{{transport=\"webrtc\"}} {}",
            load(&self.relay_current)
        );
        header(
            out,
            "deskd_viewers_total",
            "counter",
            "Viewers connected since start, by transport.",
        );
        let _ = writeln!(
            out,
            "deskd_viewers_total{{transport=\"ws\"}} {}",
            load(&s.viewers_total)
        );
        let _ = writeln!(
            out,
            "deskd_viewers_total{{transport=\"webrtc\"}} {}",
            load(&self.relay_total)
        );
        header(
            out,
            "deskd_stream_frames_encoded_total",
            "counter",
            "Frames the native stream encoded (once for all viewers), by kind.",
        );
        for (i, kind) in ["delta", "key"].iter().enumerate() {
            let _ = writeln!(
                out,
                "deskd_stream_frames_encoded_total{{kind=\"{kind}\"}} {}",
                load(&s.encoded[i])
            );
        }
        header(
            out,
            "deskd_stream_encoded_bytes_total",
            "counter",
            "H.264 bytes encoded.",
        );
        let _ = writeln!(
            out,
            "deskd_stream_encoded_bytes_total {}",
            load(&s.encoded_bytes)
        );
        header(
            out,
            "deskd_stream_encode_seconds",
            "summary",
            "Time spent encoding frames.",
        );
        let _ = writeln!(
            out,
            "deskd_stream_encode_seconds_sum {:.6}",
            load(&s.encode_us) as f64 / 1e6
        );
        let count: u64 = s.encoded.iter().map(load).sum();
        let _ = writeln!(out, "deskd_stream_encode_seconds_count {count}");
        header(
            out,
            "deskd_stream_frames_sent_total",
            "counter",
            "Video frames written to viewers (one per viewer and frame), by transport.",
        );
        let _ = writeln!(
            out,
            "deskd_stream_frames_sent_total{{transport=\"ws\"}} {}",
            load(&s.frames_sent)
        );
        header(
            out,
            "deskd_stream_bytes_sent_total",
            "counter",
            "Bytes of stream messages written to viewers, by transport.",
        );
        let _ = writeln!(
            out,
            "deskd_stream_bytes_sent_total{{transport=\"ws\"}} {}",
            load(&s.bytes_sent)
        );
        header(
            out,
            "deskd_stream_tiles_sent_total",
            "counter",
            "Small changes sent to viewers as pixels ahead of the video (one per viewer and tile).",
        );
        let _ = writeln!(out, "deskd_stream_tiles_sent_total {}", load(&s.tiles));
        header(
            out,
            "deskd_stream_tile_bytes_total",
            "counter",
            "Bytes of those tiles.",
        );
        let _ = writeln!(out, "deskd_stream_tile_bytes_total {}", load(&s.tile_bytes));
        header(
            out,
            "deskd_stream_pointer_polls_total",
            "counter",
            "Round trips to the X server for the pointer position (only while a viewer draws the cursor).",
        );
        let _ = writeln!(
            out,
            "deskd_stream_pointer_polls_total {}",
            load(&s.pointer_polls)
        );
        header(
            out,
            "deskd_stream_images_encoded_total",
            "counter",
            "JPEG images of changed boxes encoded (once for all viewers without WebCodecs).",
        );
        let _ = writeln!(out, "deskd_stream_images_encoded_total {}", load(&s.images));
        header(
            out,
            "deskd_stream_image_bytes_total",
            "counter",
            "Bytes of those images.",
        );
        let _ = writeln!(
            out,
            "deskd_stream_image_bytes_total {}",
            load(&s.image_bytes)
        );
        header(
            out,
            "deskd_stream_image_encode_seconds_sum",
            "counter",
            "Time spent encoding those images.",
        );
        let _ = writeln!(
            out,
            "deskd_stream_image_encode_seconds_sum {:.6}",
            load(&s.image_us) as f64 / 1e6
        );
        header(
            out,
            "deskd_stream_frames_dropped_total",
            "counter",
            "Frames not sent to a viewer that could not keep up (it skips to the next key frame).",
        );
        let _ = writeln!(
            out,
            "deskd_stream_frames_dropped_total {}",
            load(&s.dropped)
        );
        header(
            out,
            "deskd_stream_refused_total",
            "counter",
            "Input messages refused (view-only clients may only ping and ask for key frames).",
        );
        let _ = writeln!(out, "deskd_stream_refused_total {}", load(&s.refused));
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, quote, newline) as the text format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::ServiceStatus;

    fn status(name: &str, state: ServiceState) -> ServiceStatus {
        ServiceStatus {
            name: name.to_string(),
            state,
            pid: None,
            generation: 2,
            restarts: 1,
            critical: true,
            last_exit: None,
            reason: None,
        }
    }

    #[test]
    fn renders_services_and_counters() {
        let m = Metrics::new();
        let guard = m.relay_opened();
        m.relayed(Direction::ToNeko, 10);
        m.relayed(Direction::ToBrowser, 7);
        m.relayed(Direction::ToBrowser, 3);
        m.refused(Refusal::TooManyClients);
        let snap = Snapshot {
            services: vec![
                status("neko", ServiceState::Starting),
                status("a\"b", ServiceState::Ready),
            ],
            stopping: false,
        };
        let text = m.render(&snap);
        assert!(text.contains("deskd_service_state{service=\"neko\",state=\"starting\"} 1"));
        assert!(text.contains("deskd_service_state{service=\"neko\",state=\"ready\"} 0"));
        assert!(text.contains("deskd_service_up{service=\"a\\\"b\"} 1"));
        assert!(text.contains("deskd_service_restarts_total{service=\"neko\"} 1"));
        assert!(text.contains("deskd_ready 0"));
        assert!(text.contains("deskd_relay_connections 1"));
        assert!(text.contains("deskd_relay_frames_total{direction=\"to_browser\"} 2"));
        assert!(text.contains("deskd_relay_bytes_total{direction=\"to_browser\"} 10"));
        assert!(text.contains("deskd_refusals_total{reason=\"too_many_clients\"} 1"));
        m.stream_encoded(true, std::time::Duration::from_millis(5), 100);
        m.stream_encoded(false, std::time::Duration::from_millis(1), 10);
        m.stream_sent(true, 118);
        m.stream_refused();
        let viewer = m.stream_viewer_opened();
        let text = m.render(&snap);
        assert!(text.contains("deskd_stream_frames_encoded_total{kind=\"key\"} 1"));
        assert!(text.contains("deskd_stream_encode_seconds_sum 0.006000"));
        assert!(text.contains("deskd_stream_encode_seconds_count 2"));
        assert!(text.contains("deskd_stream_frames_sent_total{transport=\"ws\"} 1"));
        assert!(text.contains("deskd_stream_bytes_sent_total{transport=\"ws\"} 118"));
        assert!(text.contains("deskd_viewers{transport=\"ws\"} 1"));
        assert!(text.contains("deskd_viewers{transport=\"webrtc\"} 1"));
        assert!(text.contains("deskd_stream_refused_total 1"));
        drop(viewer);
        drop(guard);
        assert!(m.render(&snap).contains("deskd_relay_connections 0"));
        assert_eq!(m.relay_total(), 1);
    }
}
