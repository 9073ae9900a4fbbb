//! The H.264 bitstream work of the neko feed, pure: reading the encoder's parameter sets and
//! slice headers, writing a "nothing changed" frame, and framing access units so that
//! GStreamer's `h264parse` hands each one on the moment it arrives.
//!
//! - **Repeat frames** ([`Bitstream::repeat`]): a P picture whose macroblocks are all skipped,
//!   so the decoder shows the last reference picture again. It is a *non-reference* picture
//!   (`nal_ref_idc = 0`) with `frame_num` one past the last reference picture's: the decoder's
//!   reference state is left as it was, and the encoder's next frame, which also takes that
//!   `frame_num`, follows on as if the repeat had never been there (H.264 7.4.3). About 20
//!   bytes for a 1280x720 screen, written without running the encoder.
//! - **Patch frames** ([`Bitstream::patch`]): a repeat in which the macroblocks that changed
//!   since the encoder's last frame are sent as raw samples (I_PCM), so a small change is
//!   shown before the encoder has coded it. Non-reference as well, so the encoder's next
//!   frame (which carries the same change) follows on; its QP is 0, which turns the deblocking
//!   filter off at every edge (H.264 8.7.2.2: alpha is 0 below indexA 16), so the samples are
//!   shown exactly.
//! - **Framing** ([`frame`]): `h264parse` ends an access unit only once it has read the first
//!   two bytes of the NAL unit after the next one. So each access unit is sent followed by an
//!   access unit delimiter and the start of a filler-data NAL unit, whose rest begins the next
//!   access unit. pion, neko's WebRTC stack, drops both kinds of NAL unit (they never reach the
//!   wire).

use crate::stream::macroblocks::{Macroblocks, SAMPLES};

/// Why a stream's parameter sets or slices cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitstreamError {
    #[error("H.264 {0} ends early")]
    Truncated(&'static str),
    #[error("H.264 {what} has {value}, which the neko feed does not handle")]
    Unsupported { what: &'static str, value: u32 },
}

/// Reads bits of an RBSP (emulation prevention bytes already removed).
pub(super) struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Bits<'a> {
    pub(super) fn new(data: &'a [u8], what: &'static str) -> Self {
        Bits { data, pos: 0, what }
    }

    /// Bits read so far.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    pub(super) fn bit(&mut self) -> Result<u32, BitstreamError> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or(BitstreamError::Truncated(self.what))?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(b))
    }

    pub(super) fn bits(&mut self, n: u32) -> Result<u32, BitstreamError> {
        (0..n).try_fold(0, |v, _| Ok((v << 1) | self.bit()?))
    }

    /// Exp-Golomb, unsigned.
    pub(super) fn ue(&mut self) -> Result<u32, BitstreamError> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(BitstreamError::Unsupported {
                    what: "Exp-Golomb code",
                    value: zeros,
                });
            }
        }
        Ok(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)) as u32)
    }

    pub(super) fn se(&mut self) -> Result<i32, BitstreamError> {
        let k = self.ue()?;
        let mag = k.div_ceil(2) as i32;
        Ok(if k % 2 == 1 { mag } else { -mag })
    }
}

/// Writes bits of an RBSP.
#[derive(Default)]
pub(super) struct Writer {
    bytes: Vec<u8>,
    bit: u32,
}

impl Writer {
    pub(super) fn put(&mut self, b: bool) {
        if self.bit == 0 {
            self.bytes.push(0);
        }
        if b {
            if let Some(last) = self.bytes.last_mut() {
                *last |= 0x80 >> self.bit;
            }
        }
        self.bit = (self.bit + 1) % 8;
    }

    pub(super) fn bits(&mut self, n: u32, v: u32) {
        for i in (0..n).rev() {
            self.put((v >> i) & 1 == 1);
        }
    }

    /// Exp-Golomb, signed.
    fn se(&mut self, v: i32) {
        let k = if v > 0 {
            2 * v.unsigned_abs() - 1
        } else {
            2 * v.unsigned_abs()
        };
        self.ue(k);
    }

    /// Zero bits up to the next byte boundary.
    fn align_zero(&mut self) {
        while self.bit != 0 {
            self.put(false);
        }
    }

    /// Whole bytes, at a byte boundary.
    pub(super) fn bytes(&mut self, data: &[u8]) {
        debug_assert_eq!(self.bit, 0);
        self.bytes.extend_from_slice(data);
    }

    pub(super) fn ue(&mut self, v: u32) {
        let code = u64::from(v) + 1;
        let len = 64 - code.leading_zeros();
        for _ in 1..len {
            self.put(false);
        }
        for i in (0..len).rev() {
            self.put((code >> i) & 1 == 1);
        }
    }

    /// rbsp_trailing_bits, then the bytes.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.put(true);
        while self.bit != 0 {
            self.put(false);
        }
        self.bytes
    }
}

/// The payload of a NAL unit (after its header byte) without emulation prevention bytes.
pub(super) fn unescape(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &b in payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// `rbsp` with emulation prevention bytes put in, as a NAL unit's payload.
pub(super) fn escape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + 4);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// What a repeat frame needs of the sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sps {
    id: u32,
    log2_max_frame_num: u32,
    /// Macroblocks in a frame, and in a row of it.
    macroblocks: u32,
    width_mbs: u32,
}

/// Refuses the profiles whose SPS has the chroma and bit-depth fields after its id (the High
/// profiles and their kin): the SPS readers here follow the Baseline/Main layout only.
pub(super) fn baseline_layout(profile: u32) -> Result<(), BitstreamError> {
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        return Err(BitstreamError::Unsupported {
            what: "profile_idc",
            value: profile,
        });
    }
    Ok(())
}

fn parse_sps(rbsp: &[u8]) -> Result<Sps, BitstreamError> {
    let mut r = Bits::new(rbsp, "sequence parameter set");
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    let id = r.ue()?;
    baseline_layout(profile)?;
    let log2_max_frame_num = r.ue()? + 4;
    let poc_type = r.ue()?;
    if poc_type != 2 {
        // A repeat frame needs no picture order count only with type 2 (it follows frame_num).
        return Err(BitstreamError::Unsupported {
            what: "pic_order_cnt_type",
            value: poc_type,
        });
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width = r.ue()? + 1;
    let height = r.ue()? + 1;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only != 1 {
        return Err(BitstreamError::Unsupported {
            what: "frame_mbs_only_flag",
            value: frame_mbs_only,
        });
    }
    Ok(Sps {
        id,
        log2_max_frame_num,
        macroblocks: width * height,
        width_mbs: width,
    })
}

/// What a repeat frame needs of the picture parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pps {
    id: u32,
    sps_id: u32,
    deblocking_control: bool,
    redundant_pic_cnt: bool,
    /// 26 + pic_init_qp_minus26: a slice's QP before its slice_qp_delta.
    pic_init_qp: i32,
}

fn parse_pps(rbsp: &[u8]) -> Result<Pps, BitstreamError> {
    let mut r = Bits::new(rbsp, "picture parameter set");
    let id = r.ue()?;
    let sps_id = r.ue()?;
    let unsupported = |what, value| Err(BitstreamError::Unsupported { what, value });
    let cabac = r.bit()?;
    if cabac != 0 {
        return unsupported("entropy_coding_mode_flag", cabac);
    }
    r.bit()?; // bottom_field_pic_order_in_frame_present_flag
    let slice_groups = r.ue()?;
    if slice_groups != 0 {
        return unsupported("num_slice_groups_minus1", slice_groups);
    }
    r.ue()?; // num_ref_idx_l0_default_active_minus1
    r.ue()?; // num_ref_idx_l1_default_active_minus1
    let weighted = r.bit()?;
    if weighted != 0 {
        return unsupported("weighted_pred_flag", weighted);
    }
    r.bits(2)?; // weighted_bipred_idc
    let pic_init_qp = 26 + r.se()?;
    r.se()?; // pic_init_qs_minus26
    r.se()?; // chroma_qp_index_offset
    let deblocking_control = r.bit()? == 1;
    r.bit()?; // constrained_intra_pred_flag
    let redundant_pic_cnt = r.bit()? == 1;
    Ok(Pps {
        id,
        sps_id,
        deblocking_control,
        redundant_pic_cnt,
        pic_init_qp,
    })
}

/// The NAL unit types this module looks at.
pub(super) const NAL_SLICE: u8 = 1;
pub(super) const NAL_IDR: u8 = 5;
pub(super) const NAL_SEI: u8 = 6;
pub(super) const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const NAL_FILLER: u8 = 12;

/// One encoder's stream as the decoder has it: its parameter sets and the `frame_num` of its
/// last reference picture.
#[derive(Default, Debug)]
pub struct Bitstream {
    sps: Option<Sps>,
    pps: Option<Pps>,
    /// `frame_num` of the last reference picture, once a picture was seen.
    last_ref_frame_num: Option<u32>,
}

impl Bitstream {
    /// Takes in one encoded access unit (Annex B), as sent. An error says why repeats cannot
    /// follow it; they resume after the next key frame the module can read.
    pub fn saw(&mut self, access_unit: &[u8]) -> Result<(), BitstreamError> {
        let result = self.read(access_unit);
        if result.is_err() {
            self.last_ref_frame_num = None;
        }
        result
    }

    fn read(&mut self, access_unit: &[u8]) -> Result<(), BitstreamError> {
        for nal in crate::stream::encoder::nal_units(access_unit) {
            let Some((&header, payload)) = nal.split_first() else {
                continue;
            };
            let kind = header & 0x1f;
            let reference = header & 0x60 != 0;
            match kind {
                NAL_SPS => self.sps = Some(parse_sps(&unescape(payload))?),
                NAL_PPS => self.pps = Some(parse_pps(&unescape(payload))?),
                NAL_SLICE | NAL_IDR => {
                    let sps = self.sps.ok_or(BitstreamError::Truncated(
                        "stream (a slice before its parameter sets)",
                    ))?;
                    let rbsp = unescape(payload);
                    let mut r = Bits::new(&rbsp, "slice header");
                    let first_mb = r.ue()?;
                    r.ue()?; // slice_type
                    r.ue()?; // pic_parameter_set_id
                    let frame_num = r.bits(sps.log2_max_frame_num)?;
                    // A non-reference picture leaves the reference state alone.
                    if first_mb == 0 && reference {
                        self.last_ref_frame_num = Some(frame_num);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether no picture was seen yet.
    pub fn is_empty(&self) -> bool {
        self.last_ref_frame_num.is_none()
    }

    /// A frame that shows the last reference picture again (Annex B, one NAL unit), or `None`
    /// before the first picture or for a stream this module cannot follow.
    pub fn repeat(&self) -> Option<Vec<u8>> {
        let (mut w, sps) = self.non_reference_p_slice(0)?;
        w.ue(sps.macroblocks); // mb_skip_run: the whole picture
        Some(nal_unit(w))
    }

    /// A repeat with `mbs` (the picture's changed macroblocks) sent as raw samples, or `None`
    /// where [`Bitstream::repeat`] gives none, or when `mbs` is not of this stream's picture
    /// (another width, an address outside it, addresses out of order).
    pub fn patch(&self, mbs: &Macroblocks) -> Option<Vec<u8>> {
        let pic_init_qp = self.pps?.pic_init_qp;
        let (mut w, sps) = self.non_reference_p_slice(-pic_init_qp)?;
        let fits = mbs.width_mbs == sps.width_mbs
            && mbs.samples.len() == mbs.addrs.len() * SAMPLES
            && mbs.addrs.windows(2).all(|p| p[0] < p[1])
            && mbs.addrs.last().is_some_and(|&a| a < sps.macroblocks);
        if !fits {
            return None;
        }
        let mut next = 0; // the first macroblock not yet coded
        for (&addr, samples) in mbs.addrs.iter().zip(mbs.samples.chunks_exact(SAMPLES)) {
            w.ue(addr - next); // mb_skip_run
            w.ue(MB_TYPE_P_I_PCM);
            w.align_zero(); // pcm_alignment_zero_bit
            w.bytes(samples);
            next = addr + 1;
        }
        if next < sps.macroblocks {
            w.ue(sps.macroblocks - next);
        }
        Some(nal_unit(w))
    }

    /// The header of a non-reference P slice covering the picture, `frame_num` one past the
    /// last reference picture's, with slice_qp_delta `qp_delta`; and the SPS it follows.
    fn non_reference_p_slice(&self, qp_delta: i32) -> Option<(Writer, Sps)> {
        let (sps, pps, last) = (self.sps?, self.pps?, self.last_ref_frame_num?);
        if pps.sps_id != sps.id {
            return None;
        }
        let mut w = Writer::default();
        w.ue(0); // first_mb_in_slice
        w.ue(5); // slice_type: P, and every slice of the picture is P
        w.ue(pps.id);
        let max = 1u32 << sps.log2_max_frame_num;
        w.bits(sps.log2_max_frame_num, (last + 1) % max);
        // pic_order_cnt_type 2: no picture order count fields.
        if pps.redundant_pic_cnt {
            w.ue(0);
        }
        w.put(false); // num_ref_idx_active_override_flag
        w.put(false); // ref_pic_list_modification_flag_l0
                      // nal_ref_idc 0: no dec_ref_pic_marking; CAVLC: no cabac_init_idc.
        w.se(qp_delta); // slice_qp_delta
        if pps.deblocking_control {
            w.ue(1); // disable_deblocking_filter_idc: off
        }
        Some((w, sps))
    }
}

/// mb_type of an I_PCM macroblock in a P slice (I slice type 25, after the 5 P types).
const MB_TYPE_P_I_PCM: u32 = 30;

/// A non-reference coded slice NAL unit (Annex B) of what `w` holds.
fn nal_unit(w: Writer) -> Vec<u8> {
    let rbsp = w.finish();
    let mut nal = vec![0, 0, 0, 1, NAL_SLICE];
    nal.extend(escape(&rbsp));
    nal
}

/// An access unit delimiter (primary_pic_type 7: any slice type).
const AUD: [u8; 6] = [0, 0, 0, 1, NAL_AUD, 0xf0];
/// The first two bytes of the filler-data NAL unit that ends what is sent after each access
/// unit; [`FILLER_REST`] completes it at the start of the next one.
const FILLER_HEAD: [u8; 6] = [0, 0, 0, 1, NAL_FILLER, 0xff];
/// The filler's last payload byte and its trailing bits.
const FILLER_REST: [u8; 2] = [0xff, 0x80];

/// What opens a feed connection: the delimiter and filler start that [`frame`]'s first
/// access unit completes.
pub fn stream_start() -> Vec<u8> {
    let mut out = Vec::with_capacity(AUD.len() + FILLER_HEAD.len());
    out.extend_from_slice(&AUD);
    out.extend_from_slice(&FILLER_HEAD);
    out
}

/// One access unit as sent on a feed connection: it finishes the filler left open by what
/// came before, and ends with the next access unit's delimiter and an open filler, so that
/// `h264parse` sees this one complete at once.
pub fn frame(access_unit: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(access_unit.len() + 14);
    out.extend_from_slice(&FILLER_REST);
    out.extend_from_slice(access_unit);
    out.extend_from_slice(&AUD);
    out.extend_from_slice(&FILLER_HEAD);
    out
}

#[cfg(test)]
pub(super) mod tests;
