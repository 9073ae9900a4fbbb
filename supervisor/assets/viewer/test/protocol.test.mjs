// Byte-for-byte checks of every data-channel message against neko-protocol.md §3.
import test from "node:test";
import assert from "node:assert/strict";
import {
  OP, SERVER_OP, encodeMove, encodeScroll, encodeKey, encodeButton, encodePing, encodeTouch,
  decodeServerMessage, splitTimestamp, joinTimestamp,
} from "../protocol.js";

const bytes = (buf) => [...new Uint8Array(buf)];

test("opcodes match the protocol tables", () => {
  assert.deepEqual({ ...OP }, {
    MOVE: 1, SCROLL: 2, KEY_DOWN: 3, KEY_UP: 4, BTN_DOWN: 5, BTN_UP: 6, PING: 7,
    TOUCH_BEGIN: 8, TOUCH_UPDATE: 9, TOUCH_END: 10,
  });
  assert.deepEqual({ ...SERVER_OP }, { CURSOR_POSITION: 1, CURSOR_IMAGE: 2, PONG: 3 });
});

test("MOVE is 7 bytes: op, length 4, x:u16, y:u16 big-endian", () => {
  assert.deepEqual(bytes(encodeMove(0x0102, 0x0304)), [0x01, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04]);
  assert.deepEqual(bytes(encodeMove(1279, 719)), [0x01, 0, 4, 0x04, 0xff, 0x02, 0xcf]);
});

test("MOVE clamps to u16 and survives garbage", () => {
  assert.deepEqual(bytes(encodeMove(-5, 70000)), [1, 0, 4, 0, 0, 0xff, 0xff]);
  assert.deepEqual(bytes(encodeMove(NaN, 2.6)), [1, 0, 4, 0, 0, 0, 3]);
});

test("SCROLL is 8 bytes: length 5, delta_x:i16, delta_y:i16, control_key:u8", () => {
  assert.deepEqual(bytes(encodeScroll(0, 1, false)), [0x02, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x00]);
  assert.deepEqual(bytes(encodeScroll(0, -1, false)), [0x02, 0, 5, 0, 0, 0xff, 0xff, 0]);
  assert.deepEqual(bytes(encodeScroll(-1, 0, true)), [0x02, 0, 5, 0xff, 0xff, 0, 0, 1]);
  assert.deepEqual(bytes(encodeScroll(-40000, 40000, 1)), [0x02, 0, 5, 0x80, 0x00, 0x7f, 0xff, 1]);
});

test("KEY_DOWN / KEY_UP carry a u32 keysym", () => {
  assert.deepEqual(bytes(encodeKey(true, 0xff0d)), [0x03, 0, 4, 0x00, 0x00, 0xff, 0x0d]);
  assert.deepEqual(bytes(encodeKey(false, 0xff0d)), [0x04, 0, 4, 0x00, 0x00, 0xff, 0x0d]);
  assert.deepEqual(bytes(encodeKey(true, 0x010020ac)), [0x03, 0, 4, 0x01, 0x00, 0x20, 0xac]);
  assert.deepEqual(bytes(encodeKey(true, 0x61)), [0x03, 0, 4, 0, 0, 0, 0x61]);
});

test("BTN_DOWN / BTN_UP carry a u32 X button", () => {
  assert.deepEqual(bytes(encodeButton(true, 1)), [0x05, 0, 4, 0, 0, 0, 1]);
  assert.deepEqual(bytes(encodeButton(false, 3)), [0x06, 0, 4, 0, 0, 0, 3]);
});

test("PING splits the time with the MaxUint32 multiplier", () => {
  const ms = 1764064800123; // 2025-11-25T10:00:00.123Z
  const { hi, lo } = splitTimestamp(ms);
  assert.equal(hi, Math.floor(ms / 0xffffffff));
  assert.equal(hi * 0xffffffff + lo, ms);
  const b = bytes(encodePing(ms));
  assert.equal(b.length, 11);
  assert.deepEqual(b.slice(0, 3), [0x07, 0x00, 0x08]);
  const v = new DataView(encodePing(ms));
  assert.equal(v.getUint32(3), hi);
  assert.equal(v.getUint32(7), lo);
  // 2^32 - 1 ms exactly is hi=1, lo=0 (not hi=0, lo=2^32-1)
  assert.deepEqual(bytes(encodePing(0xffffffff)), [7, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0]);
});

test("TOUCH_* are 16 bytes: length 13, id:u32, x:i32, y:i32, pressure:u8", () => {
  assert.deepEqual(bytes(encodeTouch(OP.TOUCH_BEGIN, 7, 100, -2, 255)),
    [0x08, 0, 13, 0, 0, 0, 7, 0, 0, 0, 100, 0xff, 0xff, 0xff, 0xfe, 0xff]);
  assert.equal(bytes(encodeTouch(OP.TOUCH_UPDATE, 1, 0, 0, 0))[0], 0x09);
  assert.equal(bytes(encodeTouch(OP.TOUCH_END, 1, 0, 0, 0))[0], 0x0a);
  assert.throws(() => encodeTouch(OP.MOVE, 1, 0, 0, 0), RangeError);
});

test("CURSOR_POSITION decodes x and y", () => {
  const m = decodeServerMessage(new Uint8Array([0x01, 0x00, 0x07, 0x02, 0x00, 0x01, 0x2c]).buffer);
  assert.deepEqual(m, { type: "cursor-position", x: 512, y: 300 });
});

test("CURSOR_IMAGE decodes size, hotspot and the PNG from offset 11", () => {
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3];
  const total = 11 + png.length;
  const msg = new Uint8Array([0x02, total >> 8, total & 0xff, 0, 24, 0, 32, 0, 3, 0, 4, ...png]);
  const m = decodeServerMessage(msg);
  assert.equal(m.type, "cursor-image");
  assert.deepEqual([m.width, m.height, m.xhot, m.yhot], [24, 32, 3, 4]);
  assert.deepEqual([...m.png], png);
});

test("PONG decodes both timestamps", () => {
  const c = splitTimestamp(1764064800123);
  const s = splitTimestamp(1764064800456);
  const buf = new ArrayBuffer(19);
  const v = new DataView(buf);
  v.setUint8(0, 3);
  v.setUint16(1, 19);
  v.setUint32(3, c.hi); v.setUint32(7, c.lo); v.setUint32(11, s.hi); v.setUint32(15, s.lo);
  assert.deepEqual(decodeServerMessage(buf), { type: "pong", clientMs: 1764064800123, serverMs: 1764064800456 });
  assert.equal(joinTimestamp(c.hi, c.lo), 1764064800123);
});

test("short, unknown and non-binary messages never throw", () => {
  assert.equal(decodeServerMessage(new ArrayBuffer(0)), null);
  assert.equal(decodeServerMessage(new Uint8Array([1, 0, 7, 0]).buffer), null);
  assert.equal(decodeServerMessage(new Uint8Array([2, 0, 11, 0, 1]).buffer), null);
  assert.equal(decodeServerMessage(new Uint8Array([3, 0, 19]).buffer), null);
  assert.deepEqual(decodeServerMessage(new Uint8Array([0x42, 0, 3]).buffer), { type: "unknown", op: 0x42 });
  assert.equal(decodeServerMessage("text"), null);
  assert.equal(decodeServerMessage(null), null);
});
