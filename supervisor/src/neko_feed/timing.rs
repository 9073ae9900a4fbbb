//! Frame durations the feed chooses itself, pure: the H.264 syntax that makes `h264parse` give
//! each access unit the duration the feed picked for it, which neko passes to pion as the
//! sample's duration, and so into the RTP timestamp of the unit after it.
//!
//! `h264parse` takes a unit's duration from the sequence parameter set's VUI timing
//! (`num_units_in_tick / time_scale` per field) times the fields its picture timing SEI's
//! `pic_struct` names (a frame: 2, a doubled frame: 4), and falls back to the caps' frame rate
//! only without VUI timing. openh264 writes no timing, so the feed rewrites each SPS
//! ([`retime_sps`]): the same fields, with timing info at `time_scale` fields per second
//! and `pic_struct_present_flag` set, no HRD (the SEI then carries no CPB/DPB delays), and
//! puts a picture timing SEI ([`pic_timing_sei`]) before the first slice of every unit
//! ([`with_timing`]). With `time_scale` at four times the frame rate, a [`Slot::Short`] unit
//! lasts half a frame period and a [`Slot::Long`] one a whole period.

use super::h264::{
    baseline_layout, escape, unescape, Bits, BitstreamError, Writer, NAL_IDR, NAL_SEI, NAL_SLICE,
    NAL_SPS,
};

/// How long a unit lasts, in the fields of the VUI timing (two per [`Slot::Short`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// `pic_struct` 0, a frame: two fields.
    Short,
    /// `pic_struct` 7, frame doubling: four fields.
    Long,
}

impl Slot {
    /// The slot's length in ticks of the feed's clock (one tick per [`Slot::Short`]).
    pub fn ticks(self) -> u64 {
        match self {
            Slot::Short => 1,
            Slot::Long => 2,
        }
    }
}

/// The sequence parameter set `rbsp` again, with VUI timing info at `time_scale` fields per
/// second (`num_units_in_tick` 1, no fixed frame rate) and `pic_struct_present_flag` set,
/// every other field as it was. An SPS with HRD parameters is refused (its SEI would need
/// CPB and DPB delays), as is anything [`super::h264`] does not read.
pub fn retime_sps(rbsp: &[u8], time_scale: u32) -> Result<Vec<u8>, BitstreamError> {
    const WHAT: &str = "sequence parameter set";
    let unsupported = |what, value| BitstreamError::Unsupported { what, value };
    // Up to vui_parameters_present_flag: read to find where it is, then copied bit for bit.
    let mut r = Bits::new(rbsp, WHAT);
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    baseline_layout(profile)?;
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let n = r.ue()?;
            if n > 255 {
                return Err(unsupported("num_ref_frames_in_pic_order_cnt_cycle", n));
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        2 => {}
        other => return Err(unsupported("pic_order_cnt_type", other)),
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    r.ue()?; // pic_width_in_mbs_minus1
    r.ue()?; // pic_height_in_map_units_minus1
    if r.bit()? == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    if r.bit()? == 1 {
        for _ in 0..4 {
            r.ue()?; // frame_crop_{left,right,top,bottom}_offset
        }
    }
    let vui_at = r.position();
    let mut w = Writer::default();
    let mut head = Bits::new(rbsp, WHAT);
    for _ in 0..vui_at {
        w.put(head.bit()? == 1);
    }
    w.put(true); // vui_parameters_present_flag
    let had_vui = r.bit()? == 1;
    let mut c = Copy { r, w };
    if had_vui {
        if c.flag()? {
            // aspect_ratio_info_present_flag
            if c.bits(8)? == 255 {
                c.bits(16)?; // sar_width
                c.bits(16)?; // sar_height
            }
        }
        if c.flag()? {
            c.bits(1)?; // overscan_appropriate_flag
        }
        if c.flag()? {
            // video_signal_type_present_flag
            c.bits(3)?; // video_format
            c.bits(1)?; // video_full_range_flag
            if c.flag()? {
                c.bits(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
            }
        }
        if c.flag()? {
            c.ue()?; // chroma_sample_loc_type_top_field
            c.ue()?; // chroma_sample_loc_type_bottom_field
        }
        if c.r.bit()? == 1 {
            // the old timing info, replaced below
            c.r.bits(32)?;
            c.r.bits(32)?;
            c.r.bit()?;
        }
    } else {
        for _ in 0..4 {
            c.w.put(false); // aspect ratio, overscan, video signal type, chroma location
        }
    }
    c.w.put(true); // timing_info_present_flag
    c.w.bits(32, 1); // num_units_in_tick
    c.w.bits(32, time_scale.max(1));
    c.w.put(false); // fixed_frame_rate_flag
    if had_vui {
        let nal_hrd = c.r.bit()?;
        let vcl_hrd = c.r.bit()?;
        if nal_hrd == 1 || vcl_hrd == 1 {
            return Err(unsupported("hrd_parameters_present_flag", 1));
        }
        c.r.bit()?; // the old pic_struct_present_flag
    }
    c.w.put(false); // nal_hrd_parameters_present_flag
    c.w.put(false); // vcl_hrd_parameters_present_flag
    c.w.put(true); // pic_struct_present_flag
    if had_vui && c.flag()? {
        // bitstream_restriction_flag
        c.bits(1)?; // motion_vectors_over_pic_boundaries_flag
        for _ in 0..6 {
            c.ue()?; // max_bytes_per_pic_denom .. max_dec_frame_buffering
        }
    } else if !had_vui {
        c.w.put(false); // bitstream_restriction_flag
    }
    Ok(c.w.finish())
}

/// Reads fields and writes them again unchanged.
struct Copy<'a> {
    r: Bits<'a>,
    w: Writer,
}

impl Copy<'_> {
    fn flag(&mut self) -> Result<bool, BitstreamError> {
        let b = self.r.bit()?;
        self.w.put(b == 1);
        Ok(b == 1)
    }

    fn bits(&mut self, n: u32) -> Result<u32, BitstreamError> {
        let v = self.r.bits(n)?;
        self.w.bits(n, v);
        Ok(v)
    }

    fn ue(&mut self) -> Result<u32, BitstreamError> {
        let v = self.r.ue()?;
        self.w.ue(v);
        Ok(v)
    }
}

/// A picture timing SEI NAL unit (Annex B) saying how long its unit lasts, for a stream whose
/// SPS went through [`retime_sps`] (no HRD: `pic_struct` and no clock timestamps).
pub fn pic_timing_sei(slot: Slot) -> Vec<u8> {
    let (pic_struct, clock_timestamps) = match slot {
        Slot::Short => (0, 1),
        Slot::Long => (7, 2),
    };
    let mut payload = Writer::default();
    payload.bits(4, pic_struct);
    for _ in 0..clock_timestamps {
        payload.put(false); // clock_timestamp_flag
    }
    // sei_payload: bit_equal_to_one, then zero bits to the byte boundary (5 or 6 bits so
    // far: never aligned already).
    let payload = payload.finish();
    let mut w = Writer::default();
    w.bits(8, 1); // payloadType: pic_timing
    w.bits(8, payload.len() as u32); // payloadSize
    w.bytes(&payload);
    let mut nal = vec![0, 0, 0, 1, NAL_SEI];
    nal.extend(escape(&w.finish()));
    nal
}

/// Rewrites access units for [`Slot`] durations: every SPS retimed and a picture timing SEI
/// before the first slice.
#[derive(Debug)]
pub struct Retimer {
    time_scale: u32,
}

impl Retimer {
    /// For a feed whose [`Slot::Long`] lasts `1/fps` s.
    pub fn new(fps: u32) -> Retimer {
        Retimer {
            time_scale: fps.max(1).saturating_mul(4),
        }
    }

    /// `access_unit` (Annex B) lasting `slot`; an error when one of its parameter sets cannot
    /// be retimed (the unit is then to be sent as it is, and the stream without SEI).
    pub fn access_unit(&self, access_unit: &[u8], slot: Slot) -> Result<Vec<u8>, BitstreamError> {
        let mut out = Vec::with_capacity(access_unit.len() + 32);
        let mut timed = false;
        for nal in crate::stream::encoder::nal_units(access_unit) {
            let Some((&header, payload)) = nal.split_first() else {
                continue;
            };
            let kind = header & 0x1f;
            if !timed && matches!(kind, NAL_SLICE | NAL_IDR) {
                out.extend(pic_timing_sei(slot));
                timed = true;
            }
            out.extend_from_slice(&[0, 0, 0, 1, header]);
            if kind == NAL_SPS {
                out.extend(escape(&retime_sps(&unescape(payload), self.time_scale)?));
            } else {
                out.extend_from_slice(payload);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
