// Touch screens: one finger is the mouse (tap = left click, drag = left drag, long press =
// right click), two fingers scroll. Works on client coordinates; `map` turns them into
// desktop pixels. Timers are injected so the gestures can be tested without a browser.

const LONG_PRESS_MS = 550;
const SLOP_PX = 10;
const SCROLL_PX = 30;

export class TouchGestures {
  /**
   * - `map(clientX, clientY)` → `{x, y}` desktop pixels or null;
   * - `onMove(x, y)`, `onButton(down, xButton)`, `onScroll({x, y})` (steps in X's direction);
   * - `setTimer(fn, ms)` / `clearTimer(id)`.
   */
  constructor({ map, onMove, onButton, onScroll, setTimer = setTimeout, clearTimer = clearTimeout }) {
    Object.assign(this, { map, onMove, onButton, onScroll, setTimer, clearTimer });
    this.touches = new Map();
    this.state = "idle";
    this.timer = null;
    this.start = null;
    this.scrollAcc = 0;
    this.scrollY = null;
  }

  moveTo(cx, cy) {
    const p = this.map(cx, cy);
    if (p) this.onMove(p.x, p.y);
    return p;
  }

  cancelTimer() {
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
  }

  averageY() {
    let sum = 0;
    for (const t of this.touches.values()) sum += t.y;
    return sum / Math.max(1, this.touches.size);
  }

  down(id, cx, cy) {
    this.touches.set(id, { x: cx, y: cy });
    if (this.state === "idle") {
      this.state = "pending";
      this.start = { id, x: cx, y: cy };
      this.timer = this.setTimer(() => this.longPress(), LONG_PRESS_MS);
    } else if (this.state === "pending") {
      this.cancelTimer();
      this.state = "scroll";
      this.scrollY = this.averageY();
      this.scrollAcc = 0;
    }
  }

  longPress() {
    this.timer = null;
    if (this.state !== "pending") return;
    this.state = "consumed";
    if (this.moveTo(this.start.x, this.start.y)) {
      this.onButton(true, 3);
      this.onButton(false, 3);
    }
  }

  move(id, cx, cy) {
    const t = this.touches.get(id);
    if (!t) return;
    t.x = cx;
    t.y = cy;
    if (this.state === "pending" && id === this.start.id) {
      if (Math.hypot(cx - this.start.x, cy - this.start.y) > SLOP_PX) {
        this.cancelTimer();
        this.state = "drag";
        if (this.moveTo(this.start.x, this.start.y)) this.onButton(true, 1);
        this.moveTo(cx, cy);
      }
    } else if (this.state === "drag" && id === this.start.id) {
      this.moveTo(cx, cy);
    } else if (this.state === "scroll") {
      const y = this.averageY();
      // Fingers moving up push the content up: like a wheel scrolling down (button 5).
      this.scrollAcc += (y - this.scrollY) / SCROLL_PX;
      this.scrollY = y;
      const steps = Math.trunc(this.scrollAcc);
      if (steps !== 0) {
        this.scrollAcc -= steps;
        this.onScroll({ x: 0, y: steps });
      }
    }
  }

  up(id, cx, cy) {
    if (!this.touches.has(id)) return;
    this.touches.delete(id);
    if (this.state === "pending" && id === this.start.id) {
      this.cancelTimer();
      if (this.moveTo(cx, cy)) {
        this.onButton(true, 1);
        this.onButton(false, 1);
      }
      this.state = this.touches.size === 0 ? "idle" : "consumed";
    } else if (this.state === "drag" && id === this.start.id) {
      this.moveTo(cx, cy);
      this.onButton(false, 1);
      this.state = this.touches.size === 0 ? "idle" : "consumed";
    } else if (this.touches.size === 0) {
      this.state = "idle";
    }
  }

  /** The browser took the touches away (pointercancel): end a drag cleanly. */
  cancel(id) {
    if (!this.touches.has(id)) return;
    this.touches.delete(id);
    this.cancelTimer();
    if (this.state === "drag" && id === this.start.id) this.onButton(false, 1);
    this.state = this.touches.size === 0 ? "idle" : "consumed";
  }
}
