//! The `/stream/ws` framing (docs/native-stream.md), both directions. Pure: bytes in, bytes
//! out. Messages 0x01–0x03 are neko's data-channel messages (server-sent `len` is the total
//! length including the 3-byte header, as neko sends it).

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;

use super::capture::{CursorImage, Rect};

/// Version of the framing, sent in `hello`.
pub const PROTOCOL: u32 = 1;
/// Largest message a client may send.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Bytes before the H.264 data in a video frame message.
pub const VIDEO_HEADER: usize = 18;

pub const CURSOR_POSITION: u8 = 0x01;
pub const CURSOR_IMAGE: u8 = 0x02;
pub const PONG: u8 = 0x03;
pub const VIDEO: u8 = 0x10;
pub const TILE: u8 = 0x11;
/// Bytes before the RGBA pixels in a tile message.
pub const TILE_HEADER: usize = 13;
pub const FILL: u8 = 0x12;
/// A fill message's size.
pub const FILL_LEN: usize = 16;
pub const IMAGE: u8 = 0x13;
/// Bytes before the JPEG data in an image message.
pub const IMAGE_HEADER: usize = 22;
/// `0x13` flags: a picture of the whole screen (the canvas takes its size).
pub const IMAGE_FULL: u8 = 0x01;
/// `0x13` and `0x14` flags: the last message of this update.
pub const IMAGE_LAST: u8 = 0x02;
/// `0x13` flags: the image is a PNG (else JPEG).
pub const IMAGE_PNG: u8 = 0x04;
pub const COPY: u8 = 0x14;
/// A copy message's size.
pub const COPY_LEN: usize = 18;

/// What a viewer decodes, chosen with `/stream/ws?codec=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// H.264 access units (`0x10`), for WebCodecs.
    #[default]
    H264,
    /// JPEG images of the changed boxes (`0x13`), for browsers without WebCodecs.
    Jpeg,
}

impl Codec {
    /// From the query's `codec` value; the error names what was wrong.
    pub fn parse(name: &str) -> Result<Codec, BadMessage> {
        match name {
            "h264" => Ok(Codec::H264),
            "jpeg" => Ok(Codec::Jpeg),
            other => Err(BadMessage(format!(
                "unknown codec {:?}: use h264 or jpeg",
                other.chars().take(32).collect::<String>()
            ))),
        }
    }
}

/// `0x01` cursor position.
pub fn cursor_position(x: i16, y: i16) -> Bytes {
    let mut b = BytesMut::with_capacity(7);
    b.put_u8(CURSOR_POSITION);
    b.put_u16(7);
    b.put_u16(x.max(0) as u16);
    b.put_u16(y.max(0) as u16);
    b.freeze()
}

/// `0x02` cursor image; `None` if the PNG does not fit neko's u16 length.
pub fn cursor_image(c: &CursorImage) -> Option<Bytes> {
    let total = u16::try_from(11 + c.png.len()).ok()?;
    let mut b = BytesMut::with_capacity(usize::from(total));
    b.put_u8(CURSOR_IMAGE);
    b.put_u16(total);
    b.put_u16(c.width);
    b.put_u16(c.height);
    b.put_u16(c.xhot);
    b.put_u16(c.yhot);
    b.put_slice(&c.png);
    Some(b.freeze())
}

/// Splits ms as neko does: hi·(2³²−1) + lo.
fn split_ms(ms: u64) -> (u32, u32) {
    let m = u64::from(u32::MAX);
    ((ms / m) as u32, (ms % m) as u32)
}

/// `0x03` pong for a ping of `client` (hi, lo) at server time `server_ms`.
pub fn pong(client: (u32, u32), server_ms: u64) -> Bytes {
    let (hi, lo) = split_ms(server_ms);
    let mut b = BytesMut::with_capacity(19);
    b.put_u8(PONG);
    b.put_u16(19);
    b.put_u32(client.0);
    b.put_u32(client.1);
    b.put_u32(hi);
    b.put_u32(lo);
    b.freeze()
}

/// `0x10` video frame.
pub fn video(key: bool, seq: u32, capture_us: u64, width: u16, height: u16, h264: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(VIDEO_HEADER + h264.len());
    b.put_u8(VIDEO);
    b.put_u8(u8::from(key));
    b.put_u32(seq);
    b.put_u64(capture_us);
    b.put_u16(width);
    b.put_u16(height);
    b.put_slice(h264);
    b.freeze()
}

/// The key flag and the H.264 access unit of a `0x10` video frame made by [`video`]; `None`
/// for any other message.
pub fn video_payload(msg: &Bytes) -> Option<(bool, Bytes)> {
    (msg.first() == Some(&VIDEO) && msg.len() >= VIDEO_HEADER)
        .then(|| (msg[1] == 1, msg.slice(VIDEO_HEADER..)))
}

/// A box: x, y, width, height.
fn put_rect(b: &mut BytesMut, rect: Rect) {
    for v in [rect.x, rect.y, rect.width, rect.height] {
        b.put_u16(v);
    }
}

/// `0x11` tile (`rgba`: the box's pixels as RGBA rows) or `0x12` fill (`rgb`: its one
/// colour) of `rect`, shown until video frame `seq` is.
fn ahead(kind: u8, seq: u32, rect: Rect, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(TILE_HEADER + payload.len());
    b.put_u8(kind);
    b.put_u32(seq);
    put_rect(&mut b, rect);
    b.put_slice(payload);
    b.freeze()
}

/// `0x11` tile: `rect`'s pixels as RGBA rows, shown until video frame `seq` is.
pub fn tile(seq: u32, rect: Rect, rgba: &[u8]) -> Bytes {
    ahead(TILE, seq, rect, rgba)
}

/// `0x12` fill: `rect` in one colour, shown until video frame `seq` is.
pub fn fill(seq: u32, rect: Rect, rgb: [u8; 3]) -> Bytes {
    ahead(FILL, seq, rect, &rgb)
}

/// `0x13` image: `jpeg` (PNG with [`IMAGE_PNG`]) is the picture of `rect`, captured from `capture_us` on.
pub fn image(flags: u8, seq: u32, capture_us: u64, rect: Rect, jpeg: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(IMAGE_HEADER + jpeg.len());
    b.put_u8(IMAGE);
    b.put_u8(flags);
    b.put_u32(seq);
    b.put_u64(capture_us);
    put_rect(&mut b, rect);
    b.put_slice(jpeg);
    b.freeze()
}

/// `0x14` copy: the client's rows `src_y..` of the columns of `s` go to `dst_y..`.
pub fn copy(flags: u8, seq: u32, s: &super::scroll::Scroll) -> Bytes {
    let mut b = BytesMut::with_capacity(COPY_LEN);
    b.put_u8(COPY);
    b.put_u8(flags);
    b.put_u32(seq);
    put_rect(
        &mut b,
        Rect {
            y: s.src_y,
            ..s.dst()
        },
    );
    b.put_u16(s.x);
    b.put_u16(s.dst_y);
    b.freeze()
}

/// `hello` (first) or `resize` (later).
pub fn config_json(first: bool, access: &str, width: u16, height: u16, codec: &str) -> String {
    if first {
        serde_json::json!({
            "type": "hello",
            "protocol": PROTOCOL,
            "access": access,
            "width": width,
            "height": height,
            "codec": codec,
        })
    } else {
        serde_json::json!({"type": "resize", "width": width, "height": height, "codec": codec})
    }
    .to_string()
}

/// `clipboard`: the desktop's clipboard text.
pub fn clipboard_json(text: &str) -> String {
    serde_json::json!({"type": "clipboard", "text": text}).to_string()
}

pub fn error_json(message: &str) -> String {
    serde_json::json!({"type": "error", "message": message}).to_string()
}

/// One input message from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Move {
        x: u16,
        y: u16,
    },
    /// neko's deltas: `dy > 0` is up (button 4), `dx > 0` button 6.
    Scroll {
        dx: i16,
        dy: i16,
        control: bool,
    },
    Key {
        keysym: u32,
        down: bool,
    },
    Button {
        button: u32,
        down: bool,
    },
    Ping {
        hi: u32,
        lo: u32,
    },
    KeyFrame,
    Paste(String),
    Clipboard(String),
}

impl ClientMessage {
    /// Whether a view-only client may send it (an allow list).
    pub fn view_allowed(&self) -> bool {
        matches!(self, ClientMessage::Ping { .. } | ClientMessage::KeyFrame)
    }
}

/// A message that is not part of the protocol; the reason names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadMessage(pub String);

/// Parses a binary client message (neko's input format).
pub fn parse_binary(b: &[u8]) -> Result<ClientMessage, BadMessage> {
    let bad = |m: String| Err(BadMessage(m));
    let Some((&op, rest)) = b.split_first() else {
        return bad("empty binary message".into());
    };
    if rest.len() < 2 {
        return bad(format!("binary message 0x{op:02x}: no length"));
    }
    let len = u16::from_be_bytes([rest[0], rest[1]]);
    let p = &rest[2..];
    let need = |n: usize| -> Result<(), BadMessage> {
        if p.len() < n {
            Err(BadMessage(format!(
                "binary message 0x{op:02x}: {} payload bytes, expected {n}",
                p.len()
            )))
        } else {
            Ok(())
        }
    };
    let u16_at = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    Ok(match op {
        0x01 => {
            need(4)?;
            ClientMessage::Move {
                x: u16_at(0),
                y: u16_at(2),
            }
        }
        0x02 => {
            need(4)?;
            let control = len != 4 && p.len() >= 5 && p[4] != 0;
            ClientMessage::Scroll {
                dx: u16_at(0) as i16,
                dy: u16_at(2) as i16,
                control,
            }
        }
        0x03 | 0x04 => {
            need(4)?;
            ClientMessage::Key {
                keysym: u32_at(0),
                down: op == 0x03,
            }
        }
        0x05 | 0x06 => {
            need(4)?;
            ClientMessage::Button {
                button: u32_at(0),
                down: op == 0x05,
            }
        }
        0x07 => {
            need(8)?;
            ClientMessage::Ping {
                hi: u32_at(0),
                lo: u32_at(4),
            }
        }
        other => return bad(format!("unknown binary message type 0x{other:02x}")),
    })
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum TextMessage {
    Keyframe,
    Paste { text: String },
    Clipboard { text: String },
}

/// Parses a text (JSON) client message.
pub fn parse_text(t: &str) -> Result<ClientMessage, BadMessage> {
    match serde_json::from_str::<TextMessage>(t) {
        Ok(TextMessage::Keyframe) => Ok(ClientMessage::KeyFrame),
        Ok(TextMessage::Paste { text }) => Ok(ClientMessage::Paste(text)),
        Ok(TextMessage::Clipboard { text }) => Ok(ClientMessage::Clipboard(text)),
        Err(e) => Err(BadMessage(format!(
            "text message: {e} (expected JSON with \"type\": keyframe, paste or clipboard)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_have_the_documented_layout() {
        let v = video(
            true,
            7,
            0x0102_0304_0506_0708,
            1280,
            720,
            &[0, 0, 0, 1, 0x67],
        );
        assert_eq!(v.len(), VIDEO_HEADER + 5);
        assert_eq!(&v[..6], &[0x10, 1, 0, 0, 0, 7]);
        assert_eq!(&v[6..14], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&v[14..18], &[0x05, 0x00, 0x02, 0xd0]);
        assert_eq!(&cursor_position(300, -2)[..], &[1, 0, 7, 1, 44, 0, 0]);
        let p = pong((1, 2), u64::from(u32::MAX) + 5);
        assert_eq!(
            &p[..],
            &[3, 0, 19, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 5]
        );
        let img = CursorImage {
            width: 2,
            height: 3,
            xhot: 1,
            yhot: 0,
            png: vec![9; 4],
        };
        let c = cursor_image(&img).expect("fits");
        assert_eq!(&c[..], &[2, 0, 15, 0, 2, 0, 3, 0, 1, 0, 0, 9, 9, 9, 9]);
        let hello: serde_json::Value =
            serde_json::from_str(&config_json(true, "view", 8, 6, "avc1.42c01f")).expect("json");
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["protocol"], 1);
        assert_eq!(hello["access"], "view");
    }

    #[test]
    fn parses_neko_input() {
        assert_eq!(
            parse_binary(&[1, 0, 4, 0, 10, 0, 20]),
            Ok(ClientMessage::Move { x: 10, y: 20 })
        );
        assert_eq!(
            parse_binary(&[2, 0, 5, 0xff, 0xff, 0, 1, 1]),
            Ok(ClientMessage::Scroll {
                dx: -1,
                dy: 1,
                control: true
            })
        );
        assert_eq!(
            parse_binary(&[2, 0, 4, 0, 0, 0, 1]),
            Ok(ClientMessage::Scroll {
                dx: 0,
                dy: 1,
                control: false
            })
        );
        assert_eq!(
            parse_binary(&[3, 0, 4, 0, 0, 0xff, 0x0d]),
            Ok(ClientMessage::Key {
                keysym: 0xff0d,
                down: true
            })
        );
        assert_eq!(
            parse_binary(&[6, 0, 4, 0, 0, 0, 1]),
            Ok(ClientMessage::Button {
                button: 1,
                down: false
            })
        );
        assert_eq!(
            parse_binary(&[7, 0, 8, 0, 0, 0, 1, 0, 0, 0, 2]),
            Ok(ClientMessage::Ping { hi: 1, lo: 2 })
        );
        assert!(parse_binary(&[]).is_err());
        assert!(parse_binary(&[1, 0]).is_err());
        assert!(parse_binary(&[1, 0, 4, 0]).is_err());
        assert!(parse_binary(&[0x42, 0, 0]).is_err());
        assert_eq!(
            parse_text(r#"{"type":"keyframe"}"#),
            Ok(ClientMessage::KeyFrame)
        );
        assert_eq!(
            parse_text(r#"{"type":"paste","text":"hi"}"#),
            Ok(ClientMessage::Paste("hi".into()))
        );
        assert!(parse_text(r#"{"type":"control"}"#).is_err());
        assert!(parse_text("nope").is_err());
        assert!(ClientMessage::KeyFrame.view_allowed());
        assert!(!ClientMessage::Move { x: 0, y: 0 }.view_allowed());
    }
}
