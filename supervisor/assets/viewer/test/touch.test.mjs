import test from "node:test";
import assert from "node:assert/strict";
import { TouchGestures } from "../touch.js";

function rig() {
  const log = [];
  const timers = new Map();
  let next = 1;
  const g = new TouchGestures({
    map: (x, y) => ({ x: x * 2, y: y * 2 }),
    onMove: (x, y) => log.push(`move ${x},${y}`),
    onButton: (down, b) => log.push(`${down ? "down" : "up"} ${b}`),
    onScroll: (s) => log.push(`scroll ${s.y}`),
    setTimer: (fn) => {
      timers.set(next, fn);
      return next++;
    },
    clearTimer: (id) => timers.delete(id),
  });
  const fire = () => {
    for (const [id, fn] of [...timers]) {
      timers.delete(id);
      fn();
    }
  };
  return { g, log, fire, timers };
}

test("tap is a left click where the finger lifted", () => {
  const { g, log, timers } = rig();
  g.down(1, 10, 10);
  g.up(1, 12, 11);
  assert.deepEqual(log, ["move 24,22", "down 1", "up 1"]);
  assert.equal(timers.size, 0);
});

test("long press is a right click", () => {
  const { g, log, fire } = rig();
  g.down(1, 10, 10);
  fire();
  g.up(1, 10, 10);
  assert.deepEqual(log, ["move 20,20", "down 3", "up 3"]);
});

test("moving past the slop drags with the left button", () => {
  const { g, log, timers } = rig();
  g.down(1, 10, 10);
  g.move(1, 40, 10);
  g.move(1, 50, 10);
  g.up(1, 50, 12);
  assert.deepEqual(log, ["move 20,20", "down 1", "move 80,20", "move 100,20", "move 100,24", "up 1"]);
  assert.equal(timers.size, 0);
});

test("two fingers scroll: moving down scrolls up (positive steps)", () => {
  const { g, log } = rig();
  g.down(1, 100, 100);
  g.down(2, 200, 100);
  g.move(1, 100, 160);
  g.move(2, 200, 160); // average moved 60 px down
  g.move(1, 100, 100);
  g.move(2, 200, 100); // and back up
  g.up(1, 0, 0);
  g.up(2, 0, 0);
  assert.deepEqual(log, ["scroll 1", "scroll 1", "scroll -1", "scroll -1"]);
  assert.equal(g.state, "idle");
});

test("cancel during a drag releases the button", () => {
  const { g, log } = rig();
  g.down(1, 10, 10);
  g.move(1, 60, 10);
  g.cancel(1);
  assert.equal(log.at(-1), "up 1");
  assert.equal(g.state, "idle");
});
