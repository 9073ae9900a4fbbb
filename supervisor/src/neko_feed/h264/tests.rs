use super::*;
use crate::stream::convert::I420;
use crate::stream::encoder::{nal_units, Encoder, EncoderSettings};
use openh264::formats::YUVSource as _;

#[test]
fn exp_golomb_round_trips() {
    let mut w = Writer::default();
    for v in [0, 1, 2, 3, 7, 8, 255, 3600, 65535] {
        w.ue(v);
    }
    w.bits(5, 0b10110);
    let bytes = w.finish();
    let mut r = Bits::new(&bytes, "test");
    for v in [0, 1, 2, 3, 7, 8, 255, 3600, 65535] {
        assert_eq!(r.ue().expect("ue"), v);
    }
    assert_eq!(r.bits(5).expect("bits"), 0b10110);
    // the trailing stop bit
    assert_eq!(r.bit().expect("stop bit"), 1);
    // signed: 1 → 1, 2 → -1, 3 → 2
    let mut r = Bits::new(&[0b0100_1100, 0b1000_0000], "test");
    assert_eq!(r.se().expect("se"), 1);
    assert_eq!(r.se().expect("se"), -1);
    assert_eq!(r.bits(2).expect("bits"), 0);
    assert_eq!(r.bit().expect("bit"), 1);
}

#[test]
fn emulation_prevention_round_trips() {
    let rbsp = [0u8, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0];
    let escaped = escape(&rbsp);
    // no start code can appear inside a NAL unit
    assert!(!escaped
        .windows(3)
        .any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
    assert_eq!(unescape(&escaped), rbsp);
}

#[test]
fn reading_past_the_end_is_an_error_not_a_panic() {
    let mut r = Bits::new(&[0, 0], "slice header");
    assert_eq!(r.ue(), Err(BitstreamError::Truncated("slice header")));
    // Every prefix of a real parameter set, and some noise, gives an answer.
    let sps = [
        0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40, 0x50, 0x1e, 0xd0, 0x0f, 0x08, 0x84, 0x6a,
    ];
    for n in 0..sps.len() {
        let _ = parse_sps(&sps[..n]);
        let _ = parse_pps(&sps[..n]);
    }
    let mut b = Bitstream::default();
    let mut seed = 7u32;
    for _ in 0..2000 {
        let noise: Vec<u8> = (0..24)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        let _ = b.saw(&[&[0, 0, 1][..], &noise].concat());
    }
}

#[test]
fn other_picture_order_count_types_are_named() {
    // profile 66, level 31, sps id 0, log2_max_frame_num_minus4 0, pic_order_cnt_type 0
    let mut w = Writer::default();
    w.bits(8, 66);
    w.bits(16, 31);
    w.ue(0);
    w.ue(0);
    w.ue(0);
    let err = parse_sps(&w.finish()).expect_err("type 0");
    assert_eq!(
        err.to_string(),
        "H.264 pic_order_cnt_type has 0, which the neko feed does not handle"
    );
}

/// A 320x240 picture of one grey level with a lighter box at `x`.
pub(crate) fn picture(x: usize) -> I420 {
    let (w, h) = (320, 240);
    let mut bgrx = vec![60u8; w * h * 4];
    for y in 40..120 {
        for px in x..x + 64 {
            let i = (y * w + px) * 4;
            bgrx[i..i + 4].copy_from_slice(&[230, 180, 40, 255]);
        }
    }
    let mut pic = I420::new(w, h);
    pic.convert_rows(&bgrx, w * 4, 0..h);
    pic
}

/// Decodes each access unit, returning what `take` makes of the picture after each.
fn decode_with(
    units: &[Vec<u8>],
    take: impl Fn(&openh264::decoder::DecodedYUV<'_>) -> Vec<u8>,
) -> Vec<Vec<u8>> {
    let mut dec = openh264::decoder::Decoder::new().expect("decoder");
    let mut shown = Vec::new();
    for (i, au) in units.iter().enumerate() {
        let yuv = dec
            .decode(au)
            .unwrap_or_else(|e| panic!("access unit {i} does not decode: {e}"))
            .unwrap_or_else(|| panic!("access unit {i} gave no picture"));
        shown.push(take(&yuv));
    }
    shown
}

/// The picture (RGBA) after each access unit.
pub(crate) fn decode_all(units: &[Vec<u8>]) -> Vec<Vec<u8>> {
    decode_with(units, |yuv| {
        let (w, h) = yuv.dimensions();
        let mut rgba = vec![0u8; w * h * 4];
        yuv.write_rgba8(&mut rgba);
        rgba
    })
}

#[test]
fn repeats_show_the_last_picture_and_the_encoder_carries_on_after_them() {
    let mut enc = Encoder::new(&EncoderSettings::default()).expect("encoder");
    let frames: Vec<Vec<u8>> = [0, 40, 80, 120]
        .iter()
        .map(|&x| enc.encode(&picture(x)).expect("encode").data)
        .collect();
    // Without repeats.
    let plain = decode_all(&frames);

    // With repeats: one after the key frame, three in a row, one at the end.
    let mut bits = Bitstream::default();
    let mut with = Vec::new();
    let mut expect = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        bits.saw(f).expect("openh264's stream is followed");
        with.push(f.clone());
        expect.push(plain[i].clone());
        for _ in 0..[1, 3, 0, 1][i] {
            let r = bits.repeat().expect("a repeat frame");
            assert!(r.len() < 32, "a repeat is tiny: {} bytes", r.len());
            with.push(r);
            expect.push(plain[i].clone());
        }
    }
    let shown = decode_all(&with);
    assert_eq!(shown.len(), expect.len());
    for (i, (s, e)) in shown.iter().zip(&expect).enumerate() {
        assert!(s == e, "picture {i} differs from what the encoder meant");
    }
}

#[test]
fn a_repeat_is_a_non_reference_p_slice_after_the_last_reference_picture() {
    let mut enc = Encoder::new(&EncoderSettings::default()).expect("encoder");
    let mut bits = Bitstream::default();
    assert!(
        bits.repeat().is_none(),
        "nothing to repeat before a picture"
    );
    bits.saw(&enc.encode(&picture(0)).expect("encode").data)
        .expect("key frame");
    let r = bits.repeat().expect("repeat");
    let nal = nal_units(&r).next().expect("one NAL unit");
    assert_eq!(nal[0], NAL_SLICE, "nal_ref_idc 0, type 1");
    let rbsp = unescape(&nal[1..]);
    let mut b = Bits::new(&rbsp, "repeat");
    assert_eq!(b.ue().expect("first_mb"), 0);
    assert_eq!(b.ue().expect("slice_type"), 5);
    b.ue().expect("pps id");
    let sps = bits.sps.expect("sps");
    assert_eq!(b.bits(sps.log2_max_frame_num).expect("frame_num"), 1);
    assert_eq!(sps.macroblocks, 20 * 15);
}

#[test]
fn framing_completes_each_access_unit_with_what_follows_it() {
    let a = [0, 0, 0, 1, 0x65, 1, 2, 3];
    let b = [0, 0, 0, 1, 0x41, 4, 5];
    let wire = [stream_start(), frame(&a), frame(&b)].concat();
    let nals: Vec<&[u8]> = nal_units(&wire).collect();
    assert_eq!(
        nals,
        vec![
            &[NAL_AUD, 0xf0][..],
            &[NAL_FILLER, 0xff, 0xff, 0x80][..],
            &[0x65, 1, 2, 3][..],
            &[NAL_AUD, 0xf0][..],
            &[NAL_FILLER, 0xff, 0xff, 0x80][..],
            &[0x41, 4, 5][..],
            &[NAL_AUD, 0xf0][..],
            // left open: the next access unit completes it
            &[NAL_FILLER, 0xff][..],
        ]
    );
}

/// The luma plane of each decoded picture, packed (width x height).
fn decode_luma(units: &[Vec<u8>]) -> Vec<Vec<u8>> {
    decode_with(units, |yuv| {
        let (w, h) = yuv.dimensions();
        let stride = yuv.strides().0;
        let y = yuv.y();
        (0..h)
            .flat_map(|r| y[r * stride..r * stride + w].to_vec())
            .collect()
    })
}

fn luma_block(plane: &[u8], width: usize, mx: usize, my: usize) -> Vec<u8> {
    (0..16)
        .flat_map(|r| {
            let at = (my * 16 + r) * width + mx * 16;
            plane[at..at + 16].to_vec()
        })
        .collect()
}

/// The macroblocks of a 320x240 picture that boxes (x, y, w, h) touch.
fn dirty(boxes: &[(u16, u16, u16, u16)]) -> crate::stream::macroblocks::Dirty {
    let mut d = crate::stream::macroblocks::Dirty::new(320, 240);
    for &(x, y, width, height) in boxes {
        d.add(crate::stream::capture::Rect {
            x,
            y,
            width,
            height,
        });
    }
    d
}

/// An encoder and the stream after its key frame of `picture(0)`.
fn after_key_frame() -> (Encoder, Vec<u8>, Bitstream) {
    let mut enc = Encoder::new(&EncoderSettings::default()).expect("encoder");
    let f0 = enc.encode(&picture(0)).expect("encode").data;
    let mut bits = Bitstream::default();
    bits.saw(&f0).expect("key frame");
    (enc, f0, bits)
}

#[test]
fn a_patch_shows_the_changed_macroblocks_exactly_and_the_encoder_carries_on_after_it() {
    let (mut enc, f0, bits) = after_key_frame();
    let b = picture(40);
    let f1 = enc.encode(&b).expect("encode").data;

    // The box moved from x 0..64 to 40..104, rows 40..120: macroblock columns 0..=6, rows 2..=7.
    let mbs = dirty(&[(0, 40, 104, 80)])
        .samples(&b, 64)
        .expect("42 macroblocks");
    assert_eq!(mbs.addrs.len(), 42);
    let patch = bits.patch(&mbs).expect("a patch");
    assert!(patch.len() < 42 * 400, "{} bytes", patch.len());
    let repeat = bits.repeat().expect("repeat");

    let shown = decode_luma(&[f0.clone(), patch.clone(), repeat, f1.clone()]);
    let plain = decode_luma(&[f0.clone(), f1.clone()]);
    let (b_luma, _, _) = b.planes();
    for my in 0..15 {
        for mx in 0..20 {
            let patched = (2..=7).contains(&my) && mx <= 6;
            let want = if patched {
                luma_block(b_luma, 320, mx, my)
            } else {
                luma_block(&plain[0], 320, mx, my)
            };
            assert_eq!(
                luma_block(&shown[1], 320, mx, my),
                want,
                "macroblock ({mx}, {my}) after the patch (patched: {patched})"
            );
        }
    }
    // A repeat shows the reference picture again (the feed sends the patch again instead),
    // and the encoder's next frame decodes as if the patch had never been there.
    assert_eq!(shown[2], plain[0]);
    assert_eq!(shown[3], plain[1]);

    // A patch for another picture size, or with addresses out of order, is refused.
    let mut other = mbs.clone();
    other.width_mbs = 21;
    assert!(bits.patch(&other).is_none());
    let mut swapped = mbs.clone();
    swapped.addrs.swap(0, 1);
    assert!(bits.patch(&swapped).is_none());
    assert!(
        Bitstream::default().patch(&mbs).is_none(),
        "before a picture"
    );
}

#[test]
fn a_patch_may_end_on_the_last_macroblock() {
    let (_enc, f0, bits) = after_key_frame();
    let b = picture(256);
    let mbs = dirty(&[(304, 224, 16, 16), (0, 0, 1, 1)])
        .samples(&b, 4)
        .expect("two");
    assert_eq!(mbs.addrs, vec![0, 299]);
    let shown = decode_luma(&[f0, bits.patch(&mbs).expect("patch")]);
    let (b_luma, _, _) = b.planes();
    assert_eq!(
        luma_block(&shown[1], 320, 19, 14),
        luma_block(b_luma, 320, 19, 14)
    );
    assert_eq!(
        luma_block(&shown[1], 320, 0, 0),
        luma_block(b_luma, 320, 0, 0)
    );
}

/// The viewer's own WebRTC decoder (assets/viewer/encoded-frames.js `isRepeat`) skips a unit
/// whose slices are all non-reference and together at most this long: repeats, up to 8K.
const VIEWER_REPEAT_MAX_BYTES: usize = 64;

#[test]
fn the_viewer_can_tell_repeats_from_pictures() {
    let (mut enc, f0, mut bits) = after_key_frame();
    let f1 = enc.encode(&picture(40)).expect("encode").data;
    for unit in [&f0, &f1] {
        for nal in nal_units(unit).filter(|n| matches!(n[0] & 0x1f, 1 | 5)) {
            assert_ne!(
                nal[0] & 0x60,
                0,
                "the encoder's slices are reference pictures"
            );
        }
    }
    let patch = bits
        .patch(
            &dirty(&[(0, 0, 16, 16)])
                .samples(&picture(40), 64)
                .expect("one macroblock"),
        )
        .expect("a patch");
    assert!(
        patch.len() > VIEWER_REPEAT_MAX_BYTES,
        "a one-macroblock patch is {} bytes",
        patch.len()
    );
    for (w, h) in [(1280u32, 720u32), (1920, 1080), (7680, 4320)] {
        let sps = bits.sps.as_mut().expect("sps");
        sps.width_mbs = w / 16;
        sps.macroblocks = (w / 16) * h.div_ceil(16);
        let r = bits.repeat().expect("repeat");
        let nal = nal_units(&r).next().expect("one NAL unit");
        assert_eq!(nal[0] & 0x60, 0, "non-reference");
        assert!(
            nal.len() + 4 <= VIEWER_REPEAT_MAX_BYTES,
            "{w}x{h}: {} bytes",
            nal.len()
        );
    }
}
