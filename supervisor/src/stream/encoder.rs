//! H.264 encoding with Cisco's openh264 (built from source by the `openh264` crate, BSD-2):
//! screen-content real-time mode, Constrained Baseline (no B-frames, every frame decodable as
//! soon as it arrives), no frame skipping by the rate controller, one slice on one thread (the
//! lowest latency on a shared 2-core machine, see the bench), IDR frames on demand only.

use openh264::encoder::{
    BitRate, Complexity, Encoder as OpenH264, EncoderConfig, FrameRate, FrameType,
    IntraFramePeriod, QpRange, RateControlMode, SpsPpsStrategy, UsageType, VuiConfig,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

use super::convert::I420;

/// How the encoder trades size for quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Target bit rate while the screen changes continuously.
    pub bitrate_bps: u32,
    /// Highest quantiser (0..=51): a lower cap keeps text sharp at the cost of bytes.
    pub max_qp: u8,
    /// Frame-rate cap, told to the rate controller.
    pub max_fps: u32,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            bitrate_bps: 8_000_000,
            max_qp: 36,
            max_fps: 60,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("H.264 encoder: {0}")]
pub struct EncodeError(String);

/// One encoded access unit.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Annex B NAL units (start codes included); a key frame begins with SPS and PPS.
    pub data: Vec<u8>,
    pub key: bool,
}

/// The encoder of one display.
pub struct Encoder {
    inner: OpenH264,
    force_key: bool,
    /// The size the encoder is initialised for (the first frame at a size is always IDR).
    size: Option<(usize, usize)>,
    frames: u64,
}

impl Encoder {
    pub fn new(settings: &EncoderSettings) -> Result<Encoder, EncodeError> {
        let config = EncoderConfig::new()
            .usage_type(UsageType::ScreenContentRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(settings.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(settings.max_fps as f32))
            .skip_frames(false)
            .num_threads(1)
            .complexity(Complexity::Low)
            .qp(QpRange::new(
                settings.max_qp.min(51).min(12),
                settings.max_qp.min(51),
            ))
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .scene_change_detect(false)
            .background_detection(false)
            .adaptive_quantization(false)
            .vui(VuiConfig::bt601());
        let inner = OpenH264::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| EncodeError(e.to_string()))?;
        Ok(Encoder {
            inner,
            force_key: false,
            size: None,
            frames: 0,
        })
    }

    /// The next frame is an IDR frame (a viewer joined, or one asked after losing frames).
    pub fn request_key_frame(&mut self) {
        self.force_key = true;
    }

    /// Encodes `picture`. A size change re-initialises the encoder and gives a key frame.
    pub fn encode(&mut self, picture: &I420) -> Result<Encoded, EncodeError> {
        let size = (picture.width(), picture.height());
        if self.force_key && self.size == Some(size) {
            self.inner.force_intra_frame();
        }
        self.force_key = false;
        self.size = Some(size);
        let source = Source(picture);
        self.frames += 1;
        let stream = self
            .inner
            .encode_at(&source, Timestamp::from_millis(self.frames * 16))
            .map_err(|e| EncodeError(e.to_string()))?;
        let key = stream.frame_type() == FrameType::IDR;
        Ok(Encoded {
            data: stream.to_vec(),
            key,
        })
    }
}

struct Source<'a>(&'a I420);

impl YUVSource for Source<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width(), self.0.height())
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.width();
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        self.0.planes().0
    }

    fn u(&self) -> &[u8] {
        self.0.planes().1
    }

    fn v(&self) -> &[u8] {
        self.0.planes().2
    }
}

/// The WebCodecs codec string (`avc1.PPCCLL`) of a key frame, from its SPS; `None` if it
/// has none.
pub fn codec_string(annex_b: &[u8]) -> Option<String> {
    nal_units(annex_b)
        .find(|nal| nal.first().map(|h| h & 0x1f) == Some(7) && nal.len() >= 4)
        .map(|sps| format!("avc1.{:02x}{:02x}{:02x}", sps[1], sps[2], sps[3]))
}

/// The NAL units of an Annex B stream, without start codes.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            let mut e = s - 3;
            while e > 0 && data[e - 1] == 0 {
                e -= 1;
            }
            e
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter_map(move |(s, e)| data.get(s..e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_frame_on_start_and_on_request_delta_otherwise() {
        let mut enc = Encoder::new(&EncoderSettings::default()).expect("encoder");
        let mut pic = I420::new(64, 48);
        let first = enc.encode(&pic).expect("encode");
        assert!(first.key);
        let codec = codec_string(&first.data).expect("SPS in key frame");
        assert!(codec.starts_with("avc1.42"), "{codec}");
        let bgrx = vec![200u8; 64 * 48 * 4];
        pic.convert_rows(&bgrx, 64 * 4, 0..48);
        // openh264 may code the second picture as IDR too; from then on, deltas.
        enc.encode(&pic).expect("encode");
        pic.convert_rows(&vec![20u8; 64 * 48 * 4], 64 * 4, 0..16);
        let delta = enc.encode(&pic).expect("encode");
        assert!(!delta.key);
        assert!(codec_string(&delta.data).is_none());
        enc.request_key_frame();
        assert!(enc.encode(&pic).expect("encode").key);
    }

    #[test]
    fn nal_splitting() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4][..]]
        );
    }
}
