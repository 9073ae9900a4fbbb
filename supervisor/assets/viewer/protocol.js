// The neko v3 data-channel binary protocol (neko-protocol.md §3): big-endian,
// header = opcode:u8, length:u16. Client messages carry length = payload size
// without the 3-byte header (as neko's reference client does); the server ignores it
// except to tell the new SCROLL form (length 5) from the old one (length 4).

/** Client → server opcodes. */
export const OP = Object.freeze({
  MOVE: 0x01,
  SCROLL: 0x02,
  KEY_DOWN: 0x03,
  KEY_UP: 0x04,
  BTN_DOWN: 0x05,
  BTN_UP: 0x06,
  PING: 0x07,
  TOUCH_BEGIN: 0x08,
  TOUCH_UPDATE: 0x09,
  TOUCH_END: 0x0a,
});

/** Server → client opcodes. */
export const SERVER_OP = Object.freeze({
  CURSOR_POSITION: 0x01,
  CURSOR_IMAGE: 0x02,
  PONG: 0x03,
});

const HEADER = 3;
const U32 = 0xffffffff;

function message(op, payloadLength) {
  const buf = new ArrayBuffer(HEADER + payloadLength);
  const view = new DataView(buf);
  view.setUint8(0, op);
  view.setUint16(1, payloadLength);
  return { buf, view };
}

function clamp(v, lo, hi) {
  const n = Math.round(Number(v));
  if (!Number.isFinite(n)) return lo;
  return Math.min(hi, Math.max(lo, n));
}

const u16 = (v) => clamp(v, 0, 0xffff);
const i16 = (v) => clamp(v, -0x8000, 0x7fff);
const u32 = (v) => clamp(v, 0, U32);
const i32 = (v) => clamp(v, -0x80000000, 0x7fffffff);

/** MOVE: absolute desktop pixels. 7 bytes. */
export function encodeMove(x, y) {
  const { buf, view } = message(OP.MOVE, 4);
  view.setUint16(3, u16(x));
  view.setUint16(5, u16(y));
  return buf;
}

/**
 * SCROLL (new form): delta_x:i16, delta_y:i16, control_key:u8. 8 bytes.
 * delta_y > 0 is X button 4 (up), delta_x > 0 is button 6 (left).
 */
export function encodeScroll(deltaX, deltaY, controlKey) {
  const { buf, view } = message(OP.SCROLL, 5);
  view.setInt16(3, i16(deltaX));
  view.setInt16(5, i16(deltaY));
  view.setUint8(7, controlKey ? 1 : 0);
  return buf;
}

/** KEY_DOWN / KEY_UP with an X11 keysym. 7 bytes. */
export function encodeKey(down, keysym) {
  const { buf, view } = message(down ? OP.KEY_DOWN : OP.KEY_UP, 4);
  view.setUint32(3, u32(keysym));
  return buf;
}

/** BTN_DOWN / BTN_UP with an X button number (1 left, 2 middle, 3 right). 7 bytes. */
export function encodeButton(down, button) {
  const { buf, view } = message(down ? OP.BTN_DOWN : OP.BTN_UP, 4);
  view.setUint32(3, u32(button));
  return buf;
}

/** Splits a millisecond time the way neko does: ms = hi·(2³²−1) + lo. */
export function splitTimestamp(ms) {
  const t = Math.max(0, Math.floor(Number(ms) || 0));
  return { hi: Math.floor(t / U32), lo: t % U32 };
}

export function joinTimestamp(hi, lo) {
  return hi * U32 + lo;
}

/** PING: ts_hi:u32, ts_lo:u32. 11 bytes. */
export function encodePing(nowMs) {
  const { buf, view } = message(OP.PING, 8);
  const { hi, lo } = splitTimestamp(nowMs);
  view.setUint32(3, hi);
  view.setUint32(7, lo);
  return buf;
}

/** TOUCH_BEGIN / TOUCH_UPDATE / TOUCH_END: touch_id:u32, x:i32, y:i32, pressure:u8. 16 bytes. */
export function encodeTouch(op, touchId, x, y, pressure) {
  if (op !== OP.TOUCH_BEGIN && op !== OP.TOUCH_UPDATE && op !== OP.TOUCH_END) {
    throw new RangeError(`not a touch opcode: ${op}`);
  }
  const { buf, view } = message(op, 13);
  view.setUint32(3, u32(touchId));
  view.setInt32(7, i32(x));
  view.setInt32(11, i32(y));
  view.setUint8(15, clamp(pressure, 0, 255));
  return buf;
}

/**
 * Parses one server → client message. Returns null for anything too short to be valid,
 * `{type: "unknown", op}` for opcodes this client does not know; never throws.
 */
export function decodeServerMessage(data) {
  let bytes;
  if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
  else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  else return null;
  if (bytes.length < HEADER) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const op = view.getUint8(0);
  switch (op) {
    case SERVER_OP.CURSOR_POSITION:
      if (bytes.length < 7) return null;
      return { type: "cursor-position", x: view.getUint16(3), y: view.getUint16(5) };
    case SERVER_OP.CURSOR_IMAGE:
      if (bytes.length < 11) return null;
      return {
        type: "cursor-image",
        width: view.getUint16(3),
        height: view.getUint16(5),
        xhot: view.getUint16(7),
        yhot: view.getUint16(9),
        // The PNG is everything after the fixed fields (the reference client's
        // slice(11, length - 11) is a bug; see neko-protocol.md §3).
        png: bytes.slice(11),
      };
    case SERVER_OP.PONG:
      if (bytes.length < 19) return null;
      return {
        type: "pong",
        clientMs: joinTimestamp(view.getUint32(3), view.getUint32(7)),
        serverMs: joinTimestamp(view.getUint32(11), view.getUint32(15)),
      };
    default:
      return { type: "unknown", op };
  }
}
