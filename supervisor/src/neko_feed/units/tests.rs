use super::*;
use crate::neko_feed::h264::tests::picture;
use crate::stream::encoder::{Encoder, EncoderSettings};

const MS: Duration = Duration::from_millis(1);

fn contains(out: &[u8], au: &[u8]) -> bool {
    let tail = &au[au.len().saturating_sub(32)..];
    out.windows(tail.len()).any(|w| w == tail)
}

/// A feed at 60 fps (ticks of 8.33 ms) that has sent its first picture at `t0`.
fn started() -> (Feed, Encoder, Instant) {
    let t0 = Instant::now();
    let mut feed = Feed::starting(60, t0);
    let mut enc = Encoder::new(&EncoderSettings::default()).expect("encoder");
    let key = Bytes::from(enc.encode(&picture(0)).expect("encode").data);
    feed.frame(key.clone(), t0);
    let out = feed.units(t0).expect("the first picture goes at once");
    assert!(contains(&out, &key));
    (feed, enc, t0)
}

#[test]
fn a_frame_goes_at_once_stamped_at_the_next_tick() {
    let (mut feed, mut enc, t0) = started();
    // The still screen's first unit lasts a whole period: the next tick is 16.7 ms on.
    assert_eq!(feed.pace.next(), t0 + feed.pace.tick() * 2);
    assert_eq!(feed.early(t0 + 5 * MS), None, "nothing waiting");
    let au = Bytes::from(enc.encode(&picture(40)).expect("encode").data);
    feed.frame(au.clone(), t0 + 5 * MS);
    let tick = feed.early(t0 + 5 * MS).expect("sent ahead of its tick");
    assert_eq!(tick, t0 + feed.pace.tick() * 2);
    let out = feed.units(tick).expect("units");
    assert!(contains(&out, &au), "the frame, not a repeat");
    // It changed the picture: it lasts half a period.
    assert_eq!(feed.pace.next(), t0 + feed.pace.tick() * 3);
}

#[test]
fn a_frame_more_than_a_period_ahead_of_its_tick_waits_for_it() {
    let (mut feed, mut enc, t0) = started();
    let a = Bytes::from(enc.encode(&picture(40)).expect("encode").data);
    feed.frame(a, t0 + MS);
    let tick = feed.early(t0 + MS).expect("early");
    feed.units(tick).expect("units");
    // The next tick is 25 ms after t0: 24 ms from t0 + 1 ms, more than a period.
    let b = Bytes::from(enc.encode(&picture(80)).expect("encode").data);
    feed.frame(b.clone(), t0 + 2 * MS);
    assert_eq!(feed.early(t0 + 2 * MS), None);
    assert_eq!(feed.units(t0 + 2 * MS), None, "before its tick");
    let next = feed.pace.next();
    assert!(
        feed.early(next - 10 * MS).is_some(),
        "sent early once within a period"
    );
    let out = feed.units(next).expect("at its tick");
    assert!(contains(&out, &b));
}
