use super::*;
use crate::neko_feed::h264::tests::{decode_all, picture};
use crate::neko_feed::h264::Bitstream;
use crate::stream::encoder::{nal_units, Encoder, EncoderSettings};

/// The VUI fields a retimed SPS must carry, read back from `rbsp`.
#[derive(Debug, PartialEq, Eq)]
struct Vui {
    colour: Option<(u32, u32, u32)>,
    timing: Option<(u32, u32, bool)>,
    pic_struct_present: bool,
    restriction: Option<Vec<u32>>,
}

/// Reads a Baseline SPS with pic_order_cnt_type 2 up to its VUI, and the VUI.
fn read_vui(rbsp: &[u8]) -> (Vec<u32>, Option<Vui>) {
    let mut r = Bits::new(rbsp, "test");
    r.bits(24).unwrap();
    r.ue().unwrap();
    let mut head = vec![r.ue().unwrap()];
    r.ue().unwrap(); // poc type 2
    head.push(r.ue().unwrap()); // max_num_ref_frames
    head.push(r.bit().unwrap()); // gaps
    head.push(r.ue().unwrap()); // width
    head.push(r.ue().unwrap()); // height
    assert_eq!(r.bit().unwrap(), 1, "frame_mbs_only");
    head.push(r.bit().unwrap()); // direct_8x8
    if r.bit().unwrap() == 1 {
        for _ in 0..4 {
            head.push(r.ue().unwrap());
        }
    }
    if r.bit().unwrap() == 0 {
        return (head, None);
    }
    let flag = |r: &mut Bits| r.bit().unwrap() == 1;
    if flag(&mut r) && r.bits(8).unwrap() == 255 {
        r.bits(32).unwrap();
    }
    if flag(&mut r) {
        r.bit().unwrap();
    }
    let mut colour = None;
    if flag(&mut r) {
        r.bits(4).unwrap();
        if flag(&mut r) {
            colour = Some((r.bits(8).unwrap(), r.bits(8).unwrap(), r.bits(8).unwrap()));
        }
    }
    if flag(&mut r) {
        r.ue().unwrap();
        r.ue().unwrap();
    }
    let timing = flag(&mut r).then(|| (r.bits(32).unwrap(), r.bits(32).unwrap(), flag(&mut r)));
    assert!(!flag(&mut r) && !flag(&mut r), "no HRD");
    let pic_struct_present = flag(&mut r);
    let restriction = flag(&mut r).then(|| {
        (0..7)
            .map(|i| {
                if i == 0 {
                    r.bit().unwrap()
                } else {
                    r.ue().unwrap()
                }
            })
            .collect()
    });
    assert_eq!(r.bit().unwrap(), 1, "rbsp_stop_one_bit where it belongs");
    (
        head,
        Some(Vui {
            colour,
            timing,
            pic_struct_present,
            restriction,
        }),
    )
}

fn sps_of(au: &[u8]) -> Vec<u8> {
    let nal = nal_units(au)
        .find(|n| n[0] & 0x1f == NAL_SPS)
        .expect("an SPS in the key frame");
    unescape(&nal[1..])
}

#[test]
fn the_encoders_sps_gets_timing_and_pic_struct_and_keeps_everything_else() {
    let mut enc = Encoder::new(&EncoderSettings::default()).expect("encoder");
    let key = enc.encode(&picture(0)).expect("encode").data;
    let sps = sps_of(&key);
    let (head, vui) = read_vui(&sps);
    let vui = vui.expect("openh264 writes a VUI");
    assert_eq!(vui.timing, None, "openh264 writes no timing");
    let retimed = retime_sps(&sps, 240).expect("retimed");
    let (head2, vui2) = read_vui(&retimed);
    assert_eq!(head2, head, "the fields before the VUI are unchanged");
    assert_eq!(
        vui2.expect("a VUI"),
        Vui {
            timing: Some((1, 240, false)),
            pic_struct_present: true,
            ..vui
        }
    );
    // An SPS without VUI gets one with only timing and pic_struct.
    let mut w = Writer::default();
    for (n, v) in [(8, 66), (16, 0xc01f)] {
        w.bits(n, v);
    }
    for v in [0, 0, 2, 1] {
        w.ue(v);
    }
    w.put(false);
    w.ue(79);
    w.ue(44);
    w.put(true); // frame_mbs_only
    w.put(true); // direct_8x8
    w.put(false); // cropping
    w.put(false); // no VUI
    let bare = w.finish();
    let (h, v) = read_vui(&retime_sps(&bare, 120).expect("retimed"));
    assert_eq!(h, read_vui(&bare).0);
    assert_eq!(
        v,
        Some(Vui {
            colour: None,
            timing: Some((1, 120, false)),
            pic_struct_present: true,
            restriction: None
        })
    );
}

#[test]
fn what_cannot_be_retimed_is_named() {
    let mut w = Writer::default();
    w.bits(8, 100);
    w.bits(16, 0);
    w.ue(0);
    assert_eq!(
        retime_sps(&w.finish(), 240)
            .expect_err("High profile")
            .to_string(),
        "H.264 profile_idc has 100, which the neko feed does not handle"
    );
    // Every prefix of a real SPS is an error, not a panic.
    let mut enc = Encoder::new(&EncoderSettings::default()).expect("encoder");
    let sps = sps_of(&enc.encode(&picture(0)).expect("encode").data);
    for n in 0..sps.len() - 1 {
        let _ = retime_sps(&sps[..n], 240);
    }
}

#[test]
fn the_sei_says_frame_or_frame_doubling() {
    assert_eq!(
        pic_timing_sei(Slot::Short),
        [0, 0, 0, 1, 6, 1, 1, 0x04, 0x80]
    );
    assert_eq!(
        pic_timing_sei(Slot::Long),
        [0, 0, 0, 1, 6, 1, 1, 0x72, 0x80]
    );
}

#[test]
fn retimed_units_decode_to_the_same_pictures_repeats_included() {
    let mut enc = Encoder::new(&EncoderSettings::default()).expect("encoder");
    let mut bits = Bitstream::default();
    let retimer = Retimer::new(60);
    let (mut plain, mut timed) = (Vec::new(), Vec::new());
    for (i, x) in [0, 40, 80].into_iter().enumerate() {
        let au = enc.encode(&picture(x)).expect("encode").data;
        bits.saw(&au).expect("followed");
        let slot = if i % 2 == 0 { Slot::Short } else { Slot::Long };
        timed.push(retimer.access_unit(&au, slot).expect("retimed"));
        plain.push(au);
        let r = bits.repeat().expect("a repeat");
        timed.push(retimer.access_unit(&r, Slot::Long).expect("retimed"));
        plain.push(r);
    }
    // Each unit has its SEI before its first slice, and the key frame a retimed SPS.
    for au in &timed {
        let kinds: Vec<u8> = nal_units(au).map(|n| n[0] & 0x1f).collect();
        let sei = kinds.iter().position(|&k| k == NAL_SEI).expect("an SEI");
        let slice = kinds
            .iter()
            .position(|&k| k == NAL_SLICE || k == NAL_IDR)
            .expect("a slice");
        assert!(sei < slice, "{kinds:?}");
    }
    assert_eq!(
        read_vui(&sps_of(&timed[0])).1.expect("VUI").timing,
        Some((1, 240, false))
    );
    assert!(
        decode_all(&timed) == decode_all(&plain),
        "the same pictures"
    );
}

/// What `h264parse` makes of `units` sent as the feed sends them (in neko's pipeline, up to
/// the appsink): each buffer's duration in ns. `None` (with the reason printed) without
/// GStreamer's tools or its h264parse.
fn h264parse_durations(units: &[Vec<u8>]) -> Option<Vec<u64>> {
    let have = std::process::Command::new("gst-inspect-1.0")
        .arg("h264parse")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        println!("skipped: gst-inspect-1.0 h264parse fails (apt install gstreamer1.0-tools gstreamer1.0-plugins-bad)");
        return None;
    }
    let path = std::env::temp_dir().join(format!("deskd-timing-{}.h264", std::process::id()));
    let mut data = crate::neko_feed::h264::stream_start();
    for u in units {
        data.extend(crate::neko_feed::h264::frame(u));
    }
    std::fs::write(&path, data).expect("write");
    let out = std::process::Command::new("gst-launch-1.0")
        .arg("filesrc")
        .arg(format!("location={}", path.display()))
        .args(crate::neko::feed_parse(60).split_whitespace())
        .args(["!", "fakesink", "silent=false", "-v"])
        .output()
        .expect("gst-launch-1.0 runs");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout);
    let durations: Vec<u64> = text
        .lines()
        .filter(|l| l.contains("chain") && l.contains("fakesink"))
        .filter_map(|l| {
            let d = l.split("duration: ").nth(1)?.split(',').next()?;
            let mut parts = d.trim().split(':');
            let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
            let secs: f64 = s.parse().ok()?;
            Some(
                (h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60) * 1_000_000_000
                    + (secs * 1e9).round() as u64,
            )
        })
        .collect();
    Some(durations)
}

#[test]
fn h264parse_gives_each_unit_the_duration_of_its_slot() {
    let mut enc = Encoder::new(&EncoderSettings::default()).expect("encoder");
    let mut bits = Bitstream::default();
    let retimer = Retimer::new(60);
    let key = enc.encode(&picture(0)).expect("encode").data;
    bits.saw(&key).expect("followed");
    let slots = [
        Slot::Long,
        Slot::Short,
        Slot::Short,
        Slot::Long,
        Slot::Short,
        Slot::Long,
    ];
    let mut units = vec![retimer.access_unit(&key, slots[0]).expect("retimed")];
    for &s in &slots[1..] {
        units.push(
            retimer
                .access_unit(&bits.repeat().expect("repeat"), s)
                .expect("retimed"),
        );
    }
    let Some(got) = h264parse_durations(&units) else {
        return;
    };
    let want: Vec<u64> = slots
        .iter()
        .map(|s| match s {
            Slot::Short => 8_333_333,
            Slot::Long => 16_666_667,
        })
        .collect();
    // The last unit is handed on at the end of the stream; each one before it at once.
    assert!(got.len() >= slots.len() - 1, "h264parse gave {got:?}");
    println!("h264parse durations: {got:?}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g.abs_diff(*w) <= 1, "unit {i}: {g} ns, want {w} ({got:?})");
    }
}
