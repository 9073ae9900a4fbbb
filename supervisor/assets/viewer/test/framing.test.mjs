// The native stream's framing (docs/native-stream.md) byte for byte.
import test from "node:test";
import assert from "node:assert/strict";
import { decodeStreamBinary, parseStreamText, keyframeRequest, pasteMessage, clipboardMessage, VIDEO_HEADER, seqAfter } from "../framing.js";

/** A video frame as the contract lays it out: 0x10, flags, seq:u32, capture_us:u64, w:u16, h:u16, AU. */
function videoFrame({ key, seq, captureUs, width, height, au }) {
  const buf = new Uint8Array(18 + au.length);
  const v = new DataView(buf.buffer);
  v.setUint8(0, 0x10);
  v.setUint8(1, key ? 1 : 0);
  v.setUint32(2, seq);
  v.setBigUint64(6, BigInt(captureUs));
  v.setUint16(14, width);
  v.setUint16(16, height);
  buf.set(au, 18);
  return buf.buffer;
}

test("a video frame's 18-byte header and its access unit", () => {
  assert.equal(VIDEO_HEADER, 18);
  const au = [0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f];
  const m = decodeStreamBinary(videoFrame({ key: true, seq: 0xfffffffe, captureUs: 1764630000123456, width: 1280, height: 720, au }));
  assert.equal(m.type, "video");
  assert.equal(m.key, true);
  assert.equal(m.seq, 0xfffffffe);
  assert.equal(m.captureUs, 1764630000123456);
  assert.equal(m.width, 1280);
  assert.equal(m.height, 720);
  assert.deepEqual([...m.data], au);
});

test("the exact bytes of a delta frame", () => {
  const raw = new Uint8Array([0x10, 0x02, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0x05, 0x00, 0x02, 0xd0, 0, 0, 1, 0x41]);
  const m = decodeStreamBinary(raw.buffer);
  assert.deepEqual({ ...m, data: [...m.data] }, { type: "video", key: false, seq: 256, captureUs: 1000, width: 1280, height: 720, data: [0, 0, 1, 0x41] });
});

test("a frame with no access unit or a short header is not a frame", () => {
  const header = new Uint8Array(18);
  header[0] = 0x10;
  assert.equal(decodeStreamBinary(header.buffer), null);
  assert.equal(decodeStreamBinary(header.slice(0, 10).buffer), null);
  assert.equal(decodeStreamBinary(new ArrayBuffer(0)), null);
  assert.equal(decodeStreamBinary("text"), null);
});

test("cursor and pong messages are neko's", () => {
  const pos = new Uint8Array([0x01, 0, 4, 0x01, 0x2c, 0x00, 0xc8]);
  assert.deepEqual(decodeStreamBinary(pos.buffer), { type: "cursor-position", x: 300, y: 200 });
  const img = new Uint8Array([0x02, 0, 12, 0, 16, 0, 16, 0, 1, 0, 2, 0x89]);
  const c = decodeStreamBinary(img.buffer);
  assert.equal(c.type, "cursor-image");
  assert.deepEqual([c.width, c.height, c.xhot, c.yhot, [...c.png]], [16, 16, 1, 2, [0x89]]);
  const pong = new Uint8Array(19);
  const v = new DataView(pong.buffer);
  v.setUint8(0, 3);
  v.setUint16(1, 16);
  v.setUint32(7, 5000);
  v.setUint32(15, 6000);
  assert.deepEqual(decodeStreamBinary(pong.buffer), { type: "pong", clientMs: 5000, serverMs: 6000 });
  assert.deepEqual(decodeStreamBinary(new Uint8Array([0x55, 0, 0]).buffer), { type: "unknown", op: 0x55 });
});

test("hello is validated", () => {
  const hello = { type: "hello", protocol: 1, access: "view", width: 1280, height: 720, codec: "avc1.42e01f" };
  assert.deepEqual(parseStreamText(JSON.stringify(hello)), hello);
  for (const bad of [{ protocol: 2 }, { access: "admin" }, { width: 0 }, { height: 1.5 }, { codec: "" }, { codec: 7 }]) {
    assert.equal(parseStreamText(JSON.stringify({ ...hello, ...bad })), null, JSON.stringify(bad));
  }
});

test("resize, error, unknown and garbage", () => {
  assert.deepEqual(parseStreamText('{"type":"resize","width":800,"height":600,"codec":"avc1.42e01f"}'), { type: "resize", width: 800, height: 600, codec: "avc1.42e01f" });
  assert.equal(parseStreamText('{"type":"resize","width":800}'), null);
  assert.deepEqual(parseStreamText('{"type":"error","message":"input refused"}'), { type: "error", message: "input refused" });
  assert.deepEqual(parseStreamText('{"type":"later"}'), { type: "unknown", name: "later" });
  for (const bad of ["", "nope", "[]", "null", '{"type":3}']) assert.equal(parseStreamText(bad), null, bad);
});

test("the page's JSON messages", () => {
  assert.deepEqual(JSON.parse(keyframeRequest()), { type: "keyframe" });
  assert.deepEqual(JSON.parse(pasteMessage("héllo\n")), { type: "paste", text: "héllo\n" });
  assert.deepEqual(JSON.parse(clipboardMessage("x")), { type: "clipboard", text: "x" });
});

test("a tile's 13-byte header and its RGBA pixels; a size mismatch is not a tile", () => {
  const bytes = [0x11, 0, 0, 0, 7, 0, 3, 0, 4, 0, 1, 0, 2, 1, 2, 3, 255, 4, 5, 6, 255];
  const m = decodeStreamBinary(new Uint8Array(bytes).buffer);
  assert.deepEqual({ ...m, rgba: [...m.rgba] }, { type: "tile", seq: 7, x: 3, y: 4, width: 1, height: 2, rgba: [1, 2, 3, 255, 4, 5, 6, 255] });
  assert.equal(decodeStreamBinary(new Uint8Array(bytes.slice(0, 20)).buffer), null);
  assert.equal(decodeStreamBinary(new Uint8Array([...bytes, 0]).buffer), null);
  assert.equal(decodeStreamBinary(new Uint8Array([0x11, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]).buffer), null, "empty");
});

test("a fill: 16 bytes, a box and one colour", () => {
  const bytes = [0x12, 0, 0, 1, 2, 0, 3, 0, 4, 5, 0, 2, 208, 255, 0, 17];
  assert.deepEqual(decodeStreamBinary(new Uint8Array(bytes).buffer), { type: "tile", seq: 258, x: 3, y: 4, width: 1280, height: 720, fill: [255, 0, 17] });
  assert.equal(decodeStreamBinary(new Uint8Array(bytes.slice(0, 15)).buffer), null, "short");
  assert.equal(decodeStreamBinary(new Uint8Array([...bytes, 0]).buffer), null, "long");
  assert.equal(decodeStreamBinary(new Uint8Array([0x12, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3]).buffer), null, "empty");
});

test("an image: a 22-byte header, then the JPEG", () => {
  const bytes = [0x13, 3, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 5, 0, 10, 0, 20, 0, 30, 0, 40, 0xff, 0xd8];
  const m = decodeStreamBinary(new Uint8Array(bytes).buffer);
  assert.deepEqual({ ...m, data: [...m.data] }, { type: "image", full: true, last: true, png: false, seq: 9, captureUs: 5, x: 10, y: 20, width: 30, height: 40, data: [0xff, 0xd8] });
  assert.equal(decodeStreamBinary(new Uint8Array([0x13, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 5, 0, 10, 0, 20, 0, 30, 0, 40, 1]).buffer).full, false);
  assert.equal(decodeStreamBinary(new Uint8Array([0x13, 6, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 5, 0, 10, 0, 20, 0, 30, 0, 40, 1]).buffer).png, true);
  assert.equal(decodeStreamBinary(new Uint8Array(bytes.slice(0, 22)).buffer), null, "no JPEG");
  assert.equal(decodeStreamBinary(new Uint8Array([0x13, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 5, 0, 10, 0, 20, 0, 0, 0, 40, 1]).buffer), null, "empty box");
});

test("a copy: 18 bytes, a box and where it goes", () => {
  const bytes = [0x14, 2, 0, 0, 0, 4, 0, 0, 0, 16, 5, 0, 2, 188, 0, 0, 0, 0];
  assert.deepEqual(decodeStreamBinary(new Uint8Array(bytes).buffer), { type: "copy", last: true, seq: 4, sx: 0, sy: 16, width: 1280, height: 700, dx: 0, dy: 0 });
  assert.equal(decodeStreamBinary(new Uint8Array(bytes.slice(0, 17)).buffer), null, "short");
  assert.equal(decodeStreamBinary(new Uint8Array([0x14, 0, 0, 0, 0, 4, 0, 0, 0, 16, 0, 0, 2, 188, 0, 0, 0, 0]).buffer), null, "empty box");
});

test("frame numbers compare across the 32-bit wrap", () => {
  assert.equal(seqAfter(5, 4), true);
  assert.equal(seqAfter(4, 4), false);
  assert.equal(seqAfter(0, 0xffffffff), true);
  assert.equal(seqAfter(0xffffffff, 0), false);
});
