// The native stream's wire format (docs/native-stream.md, version 1): server messages on
// /stream/ws decoded (JSON text and binary: cursor, pong, video frames), the page's JSON
// messages encoded. The binary input messages are neko's and live in protocol.js.

import { decodeServerMessage } from "./protocol.js";

export const PROTOCOL = 1;
export const VIDEO_FRAME = 0x10;
/** Type byte, flags, seq, capture_us, width, height. */
export const VIDEO_HEADER = 18;
export const TILE = 0x11;
/** Type byte, seq, x, y, width, height. */
export const TILE_HEADER = 13;
export const FILL = 0x12;
/** Type byte, seq, x, y, width, height, r, g, b. */
export const FILL_LEN = 16;
export const IMAGE = 0x13;
/** Type byte, flags, seq, capture_us, x, y, width, height. */
export const IMAGE_HEADER = 22;
const IMAGE_FULL = 0x01;
const IMAGE_LAST = 0x02;
const IMAGE_PNG = 0x04;
export const COPY = 0x14;
/** Type byte, flags, seq, src x, src y, width, height, dst x, dst y. */
export const COPY_LEN = 18;
const KEY_FLAG = 0x01;

function bytesOf(data) {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

/**
 * One binary message from the server. Video frames are
 * `{type: "video", key, seq, captureUs, width, height, data}` (`data` a view into the message:
 * one Annex B access unit); tiles `{type: "tile", seq, x, y, width, height, rgba}` (`rgba` a
 * Uint8ClampedArray view of width*height pixels), and fills the same with `fill: [r, g, b]`
 * instead of `rgba`; images `{type: "image", full, last, png, seq, captureUs, x, y, width,
 * height, data}` (`data` a view of the JPEG, or PNG when `png`) and copies `{type: "copy", last, seq, sx, sy, width, height,
 * dx, dy}`; 0x01–0x03 are neko's messages (see protocol.js). Null for anything too
 * short or a tile whose size does not match; never throws.
 */
export function decodeStreamBinary(data) {
  const bytes = bytesOf(data);
  if (!bytes || bytes.length < 1) return null;
  if (bytes[0] === TILE) return decodeTile(bytes);
  if (bytes[0] === FILL) return decodeFill(bytes);
  if (bytes[0] === IMAGE) return decodeImage(bytes);
  if (bytes[0] === COPY) return decodeCopy(bytes);
  if (bytes[0] !== VIDEO_FRAME) return decodeServerMessage(bytes);
  if (bytes.length <= VIDEO_HEADER) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    type: "video",
    key: (v.getUint8(1) & KEY_FLAG) !== 0,
    seq: v.getUint32(2),
    captureUs: Number(v.getBigUint64(6)),
    width: v.getUint16(14),
    height: v.getUint16(16),
    data: bytes.subarray(VIDEO_HEADER),
  };
}

function decodeTile(bytes) {
  if (bytes.length < TILE_HEADER) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [width, height] = [v.getUint16(9), v.getUint16(11)];
  const len = width * height * 4;
  if (width === 0 || height === 0 || bytes.length !== TILE_HEADER + len) return null;
  return {
    type: "tile",
    seq: v.getUint32(1),
    x: v.getUint16(5),
    y: v.getUint16(7),
    width,
    height,
    rgba: new Uint8ClampedArray(bytes.buffer, bytes.byteOffset + TILE_HEADER, len),
  };
}

function decodeFill(bytes) {
  if (bytes.length !== FILL_LEN) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [width, height] = [v.getUint16(9), v.getUint16(11)];
  if (width === 0 || height === 0) return null;
  return { type: "tile", seq: v.getUint32(1), x: v.getUint16(5), y: v.getUint16(7), width, height, fill: [bytes[13], bytes[14], bytes[15]] };
}

function decodeImage(bytes) {
  if (bytes.length <= IMAGE_HEADER) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const flags = v.getUint8(1);
  const [width, height] = [v.getUint16(18), v.getUint16(20)];
  if (width === 0 || height === 0) return null;
  return {
    type: "image",
    full: (flags & IMAGE_FULL) !== 0,
    last: (flags & IMAGE_LAST) !== 0,
    png: (flags & IMAGE_PNG) !== 0,
    seq: v.getUint32(2),
    captureUs: Number(v.getBigUint64(6)),
    x: v.getUint16(14),
    y: v.getUint16(16),
    width,
    height,
    data: bytes.subarray(IMAGE_HEADER),
  };
}

function decodeCopy(bytes) {
  if (bytes.length !== COPY_LEN) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [width, height] = [v.getUint16(10), v.getUint16(12)];
  if (width === 0 || height === 0) return null;
  return { type: "copy", last: (v.getUint8(1) & IMAGE_LAST) !== 0, seq: v.getUint32(2), sx: v.getUint16(6), sy: v.getUint16(8), width, height, dx: v.getUint16(14), dy: v.getUint16(16) };
}

/** Whether frame number `a` comes after `b` (32-bit, wrapping). */
export const seqAfter = (a, b) => ((a - b) | 0) > 0;

const positive = (n) => Number.isInteger(n) && n > 0 && n <= 0xffff;

/**
 * One text message from the server: `hello`, `resize`, `error` and `clipboard` validated, anything else
 * `{type: "unknown"}`; null when it is not a JSON object with a type, or a known type with
 * bad fields.
 */
export function parseStreamText(text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (!m || typeof m !== "object" || typeof m.type !== "string") return null;
  switch (m.type) {
    case "hello":
      if (m.protocol !== PROTOCOL) return null;
      if (m.access !== "control" && m.access !== "view") return null;
      if (!positive(m.width) || !positive(m.height) || typeof m.codec !== "string" || m.codec === "") return null;
      return { type: "hello", protocol: m.protocol, access: m.access, width: m.width, height: m.height, codec: m.codec };
    case "resize":
      if (!positive(m.width) || !positive(m.height) || typeof m.codec !== "string" || m.codec === "") return null;
      return { type: "resize", width: m.width, height: m.height, codec: m.codec };
    case "error":
      return { type: "error", message: typeof m.message === "string" ? m.message : "" };
    case "clipboard":
      return typeof m.text === "string" ? { type: "clipboard", text: m.text } : null;
    default:
      return { type: "unknown", name: m.type };
  }
}

export const keyframeRequest = () => JSON.stringify({ type: "keyframe" });
export const pasteMessage = (text) => JSON.stringify({ type: "paste", text: String(text) });
export const clipboardMessage = (text) => JSON.stringify({ type: "clipboard", text: String(text) });
