//! The native stream's encoder pipeline, stage by stage (issue 11): convert (BGRX → I420)
//! and H.264 encode (openh264, as deskd configures it, and a few other openh264 settings for
//! comparison) for a full 1280x720 change and for a small one (one character cell), on one
//! core; then, with a real Xvfb, capture (XDamage + MIT-SHM) of the same two changes.
//! Not a test: nothing is asserted. The end-to-end stream benchmark is another one.
//!
//! Run: `cargo bench -p deskd --bench stream_encode`. `STREAM_BENCH_ROUNDS` sets the rounds
//! (default 60).

#[path = "../tests/common/agent_x.rs"]
mod agent_x;

use std::time::{Duration, Instant};

use deskd::stream::capture::Capture;
use deskd::stream::convert::I420;
use deskd::stream::encoder::{Encoder, EncoderSettings};
use openh264::encoder::{
    BitRate, Complexity, Encoder as OpenH264, EncoderConfig, FrameRate, QpRange, RateControlMode,
    UsageType,
};
use openh264::formats::YUVBuffer;
use openh264::OpenH264API;

const W: usize = 1280;
const H: usize = 720;

fn rounds() -> usize {
    std::env::var("STREAM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// A page of pseudo-text: dark 6x10 glyph blobs in 8x16 cells on white, as a terminal or
/// editor shows; `seed` picks which cells are ink.
fn page(seed: u32) -> Vec<u8> {
    let mut img = vec![255u8; W * H * 4];
    let mut s = seed | 1;
    for cy in 0..H / 16 {
        for cx in 0..W / 8 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            if s % 3 == 0 {
                continue;
            }
            glyph(&mut img, cx, cy, s);
        }
    }
    img
}

fn glyph(img: &mut [u8], cx: usize, cy: usize, s: u32) {
    for y in 0..10 {
        for x in 0..6 {
            if (s >> ((x + y * 3) % 31)) & 1 == 1 {
                let i = ((cy * 16 + 3 + y) * W + cx * 8 + 1 + x) * 4;
                img[i..i + 3].copy_from_slice(&[40, 40, 40]);
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Alternating full pages and single-character changes through `encode`; median ms of each
/// and the mean bytes.
fn run(mut encode: impl FnMut(&I420) -> usize) -> (f64, f64, usize, usize) {
    let pages = [page(1), page(2)];
    let mut pic = I420::new(W, H);
    pic.convert_rows(&pages[0], W * 4, 0..H);
    encode(&pic);
    encode(&pic);
    let (mut full, mut small, mut full_bytes, mut small_bytes) = (vec![], vec![], 0, 0);
    let mut img = pages[1].clone();
    for r in 0..rounds() {
        img.copy_from_slice(&pages[r % 2]);
        pic.convert_rows(&img, W * 4, 0..H);
        let t = Instant::now();
        full_bytes += encode(&pic);
        full.push(ms(t.elapsed()));
        glyph(&mut img, 10 + r % 100, 20, 0x5555_5555 ^ r as u32);
        pic.convert_rows(&img, W * 4, 20 * 16..21 * 16);
        let t = Instant::now();
        small_bytes += encode(&pic);
        small.push(ms(t.elapsed()));
    }
    let n = rounds().max(1);
    (median(full), median(small), full_bytes / n, small_bytes / n)
}

fn report(name: &str, (full, small, fb, sb): (f64, f64, usize, usize)) {
    println!(
        "  {name:<44} full {full:6.2} ms {:>7} B   small {small:5.2} ms {:>6} B",
        fb, sb
    );
}

fn convert() {
    let img = page(3);
    let mut pic = I420::new(W, H);
    let full = median(
        (0..rounds())
            .map(|_| {
                let t = Instant::now();
                pic.convert_rows(&img, W * 4, 0..H);
                ms(t.elapsed())
            })
            .collect(),
    );
    let band = median(
        (0..rounds())
            .map(|_| {
                let t = Instant::now();
                pic.convert_rows(&img, W * 4, 320..336);
                ms(t.elapsed())
            })
            .collect(),
    );
    println!("convert BGRX -> I420: full {full:.2} ms, one 16-row band {band:.3} ms");
}

fn variant(name: &str, config: EncoderConfig) {
    let Ok(mut enc) = OpenH264::with_api_config(OpenH264API::from_source(), config) else {
        println!("  {name}: encoder refused the settings");
        return;
    };
    let mut buf = YUVBuffer::new(W, H);
    report(
        name,
        run(|pic| {
            let (y, u, v) = pic.planes();
            let mut all = Vec::with_capacity(y.len() + u.len() + v.len());
            all.extend_from_slice(y);
            all.extend_from_slice(u);
            all.extend_from_slice(v);
            buf = YUVBuffer::from_vec(all, W, H);
            enc.encode(&buf).map(|b| b.to_vec().len()).unwrap_or(0)
        }),
    );
}

fn encode() {
    println!(
        "encode 1280x720 (median of {} rounds, one thread unless said):",
        rounds()
    );
    let settings = EncoderSettings::default();
    match Encoder::new(&settings) {
        Ok(mut enc) => report(
            "deskd (screen RT, bitrate 8M, low, qp 12..36)",
            run(|pic| enc.encode(pic).map(|e| e.data.len()).unwrap_or(0)),
        ),
        Err(e) => println!("  deskd encoder: {e}"),
    }
    let base = || {
        EncoderConfig::new()
            .usage_type(UsageType::ScreenContentRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(8_000_000))
            .max_frame_rate(FrameRate::from_hz(60.0))
            .skip_frames(false)
            .num_threads(1)
    };
    variant("medium complexity", base().complexity(Complexity::Medium));
    variant("high complexity", base().complexity(Complexity::High));
    variant(
        "low, 2 threads",
        base().complexity(Complexity::Low).num_threads(2),
    );
    variant(
        "low, qp 12..51",
        base().complexity(Complexity::Low).qp(QpRange::new(12, 51)),
    );
    variant(
        "low, qp 12..28",
        base().complexity(Complexity::Low).qp(QpRange::new(12, 28)),
    );
    variant(
        "camera RT, low",
        base()
            .usage_type(UsageType::CameraVideoRealTime)
            .complexity(Complexity::Low),
    );
}

fn capture() {
    let x = agent_x::Xvfb::start(W as u32, H as u32);
    let win = agent_x::TestWindow::open(&x.display, 0, 0, W as u16, H as u16, "bench");
    let Ok(mut cap) = Capture::connect(&x.display) else {
        println!("capture: cannot connect to {}", x.display);
        return;
    };
    let mut grab = |what: &dyn Fn(u32)| -> Vec<f64> {
        let mut times = Vec::new();
        for r in 0..rounds() as u32 {
            what(r);
            let deadline = Instant::now() + Duration::from_secs(2);
            // Wait for the damage, then time the grab of what changed.
            loop {
                let _ = cap.wait(Duration::from_millis(20));
                if cap.damaged() || Instant::now() > deadline {
                    break;
                }
            }
            let t = Instant::now();
            if cap.grab().is_err() {
                break;
            }
            times.push(ms(t.elapsed()));
        }
        times
    };
    let full = grab(&|r| {
        win.fill(
            if r % 2 == 0 { 0x203040 } else { 0xc0b0a0 },
            0,
            0,
            W as u16,
            H as u16,
        )
    });
    let small = grab(&|r| win.fill(0x101010 * (r % 15 + 1), 80, 320, 8, 16));
    println!(
        "capture (XDamage + MIT-SHM into the kept frame): full {:.2} ms, one character {:.3} ms",
        median(full),
        median(small)
    );
}

fn main() {
    println!("stream_encode: {W}x{H}");
    convert();
    encode();
    capture();
}
