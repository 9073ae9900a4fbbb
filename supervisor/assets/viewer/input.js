// Input state for either transport (neko's binary messages over the data channel or the
// native stream's WebSocket): what is held down (so it can all be released on blur or
// disconnect), control requested on first interaction and the interaction replayed once neko
// makes this session host, nothing at all from a view-only viewer, and wheel deltas turned
// into ±1 scroll steps.

import { encodeButton, encodeKey, encodeMove, encodeScroll, OP } from "./protocol.js";

/** DOM MouseEvent.button → X button (1 left, 2 middle, 3 right, 8 back, 9 forward). */
export function xButton(domButton) {
  switch (domButton) {
    case 0: return 1;
    case 1: return 2;
    case 2: return 3;
    case 3: return 8;
    case 4: return 9;
    default: return null;
  }
}

const QUEUE_LIMIT = 256;
const REQUEST_RETRY_MS = 3000;

export class InputController {
  /**
   * - `send(ArrayBuffer)`: writes to the data channel;
   * - `requestControl()`: sends WS `control/request`;
   * - `now()`: ms clock (tests pass a fake).
   */
  constructor({ send, requestControl, now = () => Date.now() }) {
    this.sendRaw = send;
    this.requestControl = requestControl;
    this.now = now;
    this.channelOpen = false;
    this.isHost = false;
    this.viewOnly = false;
    this.queue = [];
    this.requestedAt = null;
    /** event.code → keysym sent on key down, so the up releases the same keysym. */
    this.keys = new Map();
    this.buttons = new Set();
    this.last = null;
  }

  get ready() {
    return this.channelOpen && this.isHost;
  }

  setChannelOpen(open) {
    this.channelOpen = Boolean(open);
    if (!this.channelOpen) this.forget();
    this.flush();
  }

  /** neko said who the host is. Losing host means neko released every key already. */
  setHost(isHost) {
    const was = this.isHost;
    this.isHost = Boolean(isHost);
    if (this.isHost) {
      this.requestedAt = null;
      this.flush();
    } else if (was) {
      this.forget();
    }
  }

  /**
   * A view-only viewer (its access is known): input is dropped at once, never queued, and
   * control is never asked for.
   */
  setViewOnly(viewOnly) {
    this.viewOnly = Boolean(viewOnly);
    if (this.viewOnly) this.forget();
  }

  /** Drops all state without sending anything (the server side is gone or reset). */
  forget() {
    this.keys.clear();
    this.buttons.clear();
    this.queue = [];
    this.last = null;
  }

  flush() {
    if (!this.ready) return;
    const q = this.queue;
    this.queue = [];
    for (const m of q) this.sendRaw(m);
  }

  emit(buf, op) {
    if (this.viewOnly) return;
    if (this.ready) {
      this.sendRaw(buf);
      return;
    }
    if (op === OP.MOVE && this.queue.length > 0) {
      const tail = new DataView(this.queue[this.queue.length - 1]);
      if (tail.getUint8(0) === OP.MOVE) this.queue.pop();
    }
    if (this.queue.length >= QUEUE_LIMIT) {
      // Too much happened without control; replaying half of it would be worse than nothing.
      this.forget();
      return;
    }
    this.queue.push(buf);
    const t = this.now();
    if (this.channelOpen && !this.isHost && (this.requestedAt === null || t - this.requestedAt >= REQUEST_RETRY_MS)) {
      this.requestedAt = t;
      this.requestControl();
    }
  }

  move(x, y) {
    if (this.last && this.last.x === x && this.last.y === y) return;
    this.last = { x, y };
    this.emit(encodeMove(x, y), OP.MOVE);
  }

  buttonDown(button) {
    if (this.viewOnly || button === null || this.buttons.has(button)) return;
    this.buttons.add(button);
    this.emit(encodeButton(true, button), OP.BTN_DOWN);
  }

  buttonUp(button) {
    if (button === null || !this.buttons.has(button)) return;
    this.buttons.delete(button);
    this.emit(encodeButton(false, button), OP.BTN_UP);
  }

  /** Returns false when the key is already down (an auto-repeat: X repeats by itself). */
  keyDown(code, keysym) {
    const id = code || `keysym:${keysym}`;
    if (this.viewOnly || this.keys.has(id)) return false;
    for (const held of this.keys.values()) if (held === keysym) return false;
    this.keys.set(id, keysym);
    this.emit(encodeKey(true, keysym), OP.KEY_DOWN);
    return true;
  }

  /** Releases what the down of this physical key sent; returns that keysym or null. */
  keyUp(code, keysym) {
    let id = code || `keysym:${keysym}`;
    if (!this.keys.has(id)) {
      id = null;
      for (const [k, v] of this.keys) if (v === keysym) id = k;
      if (id === null) return null;
    }
    const sent = this.keys.get(id);
    this.keys.delete(id);
    this.emit(encodeKey(false, sent), OP.KEY_UP);
    return sent;
  }

  /** A press and release of a keysym that is not held (e.g. text from IME composition). */
  typeKeysym(keysym) {
    this.emit(encodeKey(true, keysym), OP.KEY_DOWN);
    this.emit(encodeKey(false, keysym), OP.KEY_UP);
  }

  /** One or more ±1 steps; `steps.x`/`steps.y` are already in X's direction (see WheelAccumulator). */
  scroll(steps, controlKey) {
    const n = Math.max(Math.abs(steps.x), Math.abs(steps.y));
    for (let i = 0; i < n; i++) {
      const dx = i < Math.abs(steps.x) ? Math.sign(steps.x) : 0;
      const dy = i < Math.abs(steps.y) ? Math.sign(steps.y) : 0;
      this.emit(encodeScroll(dx, dy, controlKey), OP.SCROLL);
    }
  }

  /**
   * Windows reports AltGr as Control + AltGraph: before a character typed with AltGr, release
   * the Control that came with it, or the desktop would see Ctrl+@ instead of @.
   * Returns the keysyms released.
   */
  releaseControlForAltGr() {
    const released = [];
    for (const code of ["ControlLeft", "ControlRight"]) {
      const keysym = this.keys.get(code);
      if (keysym !== undefined) released.push(this.keyUp(code, keysym));
    }
    return released;
  }

  heldKeysyms() {
    return [...this.keys.values()];
  }

  isKeysymHeld(keysym) {
    return this.heldKeysyms().includes(keysym);
  }

  /** Releases every key and button this viewer holds (blur, hidden tab, disconnect). */
  releaseAll() {
    if (!this.ready) {
      this.forget();
      return;
    }
    for (const keysym of [...this.keys.values()].reverse()) this.sendRaw(encodeKey(false, keysym));
    for (const b of this.buttons) this.sendRaw(encodeButton(false, b));
    this.keys.clear();
    this.buttons.clear();
  }
}

const PIXELS_PER_STEP = 100;
const LINES_PER_STEP = 3;

/**
 * Turns WheelEvent deltas into whole scroll steps in X's direction (delta_y > 0 = button 4 =
 * up, so a browser deltaY > 0 (scroll down) gives negative steps). Small trackpad deltas
 * accumulate until they make a step; a change of direction drops the remainder; the first
 * event of a gesture (after a pause) always makes at least one step, so a mouse whose notch is
 * smaller than a step still scrolls at once.
 */
export class WheelAccumulator {
  constructor(gapMs = 200) {
    this.ax = 0;
    this.ay = 0;
    this.gapMs = gapMs;
    this.lastT = -Infinity;
  }

  static units(delta, deltaMode) {
    if (deltaMode === 1) return delta / LINES_PER_STEP; // DOM_DELTA_LINE
    if (deltaMode === 2) return delta * 3; // DOM_DELTA_PAGE
    return delta / PIXELS_PER_STEP; // DOM_DELTA_PIXEL
  }

  static axis(acc, u, fresh) {
    if (u === 0) return { acc, step: 0 };
    let a = Math.sign(u) !== Math.sign(acc) ? 0 : acc;
    a += u;
    let step = Math.trunc(a);
    if (step === 0 && fresh) {
      step = Math.sign(u);
      a = 0;
    } else {
      a -= step;
    }
    return { acc: a, step };
  }

  /** Adds one WheelEvent; `t` is its time in ms. Returns `{x, y}` steps in X's direction. */
  add(deltaX, deltaY, deltaMode = 0, t = 0) {
    const fresh = t - this.lastT > this.gapMs;
    this.lastT = t;
    const x = WheelAccumulator.axis(this.ax, WheelAccumulator.units(Number(deltaX) || 0, deltaMode), fresh);
    const y = WheelAccumulator.axis(this.ay, WheelAccumulator.units(Number(deltaY) || 0, deltaMode), fresh);
    this.ax = x.acc;
    this.ay = y.acc;
    return { x: x.step === 0 ? 0 : -x.step, y: y.step === 0 ? 0 : -y.step };
  }
}
