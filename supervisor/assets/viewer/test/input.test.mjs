import test from "node:test";
import assert from "node:assert/strict";
import { InputController, WheelAccumulator, xButton } from "../input.js";

const hex = (buf) => Buffer.from(buf).toString("hex");

function rig() {
  const sent = [];
  let requests = 0;
  let t = 0;
  const c = new InputController({
    send: (b) => sent.push(hex(b)),
    requestControl: () => (requests += 1),
    now: () => t,
  });
  return { c, sent, requests: () => requests, advance: (ms) => (t += ms) };
}

test("DOM buttons map to X buttons", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5].map(xButton), [1, 2, 3, 8, 9, null]);
});

test("first interaction requests control once and is replayed when host", () => {
  const { c, sent, requests } = rig();
  c.setChannelOpen(true);
  c.move(10, 20);
  c.buttonDown(1);
  c.move(11, 21);
  assert.equal(requests(), 1);
  assert.deepEqual(sent, []);
  c.setHost(true);
  assert.deepEqual(sent, ["01000400" + "0a0014", "05000400000001", "01000400" + "0b0015"]);
  c.buttonUp(1);
  assert.equal(sent[3], "06000400000001");
});

test("queued moves are coalesced to the latest", () => {
  const { c, sent } = rig();
  c.setChannelOpen(true);
  for (let i = 0; i < 50; i++) c.move(i, i);
  c.setHost(true);
  assert.deepEqual(sent, ["0100040031" + "0031"]);
});

test("control is asked again only after a pause", () => {
  const { c, requests, advance } = rig();
  c.setChannelOpen(true);
  c.keyDown("KeyA", 0x61);
  c.keyUp("KeyA", 0x61);
  assert.equal(requests(), 1);
  advance(3000);
  c.keyDown("KeyB", 0x62);
  assert.equal(requests(), 2);
});

test("without a data channel nothing is requested or sent", () => {
  const { c, sent, requests } = rig();
  c.move(1, 1);
  assert.equal(requests(), 0);
  assert.deepEqual(sent, []);
});

test("key up releases the keysym that went down, even if the character changed", () => {
  const { c, sent } = rig();
  c.setChannelOpen(true);
  c.setHost(true);
  c.keyDown("ShiftLeft", 0xffe1);
  c.keyDown("KeyA", 0x41); // "A"
  c.keyUp("ShiftLeft", 0xffe1);
  assert.equal(c.keyUp("KeyA", 0x61), 0x41); // released as "a" by the browser
  assert.deepEqual(sent, ["0300040000ffe1", "03000400000041", "0400040000ffe1", "04000400000041"]);
});

test("repeats and ups without downs send nothing", () => {
  const { c, sent } = rig();
  c.setChannelOpen(true);
  c.setHost(true);
  assert.equal(c.keyDown("KeyA", 0x61), true);
  assert.equal(c.keyDown("KeyA", 0x61), false);
  assert.equal(c.keyUp("KeyB", 0x62), null);
  c.buttonUp(3);
  assert.deepEqual(sent, ["03000400000061"]);
});

test("releaseAll releases every held key and button", () => {
  const { c, sent } = rig();
  c.setChannelOpen(true);
  c.setHost(true);
  c.keyDown("ControlLeft", 0xffe3);
  c.keyDown("KeyC", 0x63);
  c.buttonDown(1);
  sent.length = 0;
  c.releaseAll();
  assert.deepEqual(sent.sort(), ["04000400000063", "0400040000ffe3", "06000400000001"].sort());
  assert.deepEqual(c.heldKeysyms(), []);
  sent.length = 0;
  c.releaseAll();
  assert.deepEqual(sent, []);
});

test("losing host or the channel forgets what was held (neko resets keys itself)", () => {
  const { c, sent } = rig();
  c.setChannelOpen(true);
  c.setHost(true);
  c.keyDown("KeyA", 0x61);
  c.setHost(false);
  assert.deepEqual(c.heldKeysyms(), []);
  c.setHost(true);
  c.keyDown("KeyA", 0x61); // can go down again
  assert.equal(sent.length, 2);
});

test("scroll sends ±1 steps", () => {
  const { c, sent } = rig();
  c.setChannelOpen(true);
  c.setHost(true);
  c.scroll({ x: 0, y: -2 }, false);
  c.scroll({ x: 1, y: 0 }, true);
  assert.deepEqual(sent, ["0200050000ffff00", "0200050000ffff00", "0200050001000001"]);
});

test("wheel: deltaY > 0 (down) gives negative steps, one per 100 px", () => {
  const w = new WheelAccumulator();
  assert.deepEqual(w.add(0, 100, 0, 0), { x: 0, y: -1 });
  assert.deepEqual(w.add(0, 250, 0, 16), { x: 0, y: -2 });
  assert.deepEqual(w.add(0, 50, 0, 32), { x: 0, y: -1 }); // 0.5 carried + 0.5
  assert.deepEqual(w.add(0, -100, 0, 48), { x: 0, y: 1 });
  assert.deepEqual(w.add(100, 0, 0, 64), { x: -1, y: 0 });
});

test("wheel: trackpad deltas accumulate; first event after a pause always scrolls", () => {
  const w = new WheelAccumulator();
  assert.deepEqual(w.add(0, 4, 0, 1000), { x: 0, y: -1 }); // fresh gesture
  const steps = [];
  for (let i = 1; i <= 50; i++) steps.push(w.add(0, 4, 0, 1000 + i * 16).y);
  assert.equal(steps.reduce((a, b) => a + b, 0), -2); // 200 px
  assert.deepEqual(w.add(0, -4, 0, 1900), { x: 0, y: 0 }); // direction change drops the rest
});

test("wheel: lines and pages", () => {
  const w = new WheelAccumulator();
  assert.deepEqual(w.add(0, 3, 1, 0), { x: 0, y: -1 });
  assert.deepEqual(w.add(0, 1, 2, 10), { x: 0, y: -3 });
});

test("AltGr from Windows (Control + AltGraph): Control is released before the character", () => {
  const { c, sent } = rig();
  c.setChannelOpen(true);
  c.setHost(true);
  c.keyDown("ControlLeft", 0xffe3);
  c.keyDown("AltRight", 0xfe03);
  assert.deepEqual(c.releaseControlForAltGr(), [0xffe3]);
  c.keyDown("KeyQ", 0x40); // "@" on a German layout
  assert.deepEqual(sent, ["0300040000ffe3", "0300040000fe03", "0400040000ffe3", "03000400000040"]);
  assert.equal(c.keyUp("ControlLeft", 0xffe3), null); // its keyup later is a no-op
  assert.deepEqual(c.releaseControlForAltGr(), []);
});

test("a view-only viewer sends nothing, queues nothing and never asks for control", () => {
  const { c, sent, requests } = rig();
  c.setChannelOpen(true);
  c.setViewOnly(true);
  c.move(1, 2);
  c.buttonDown(1);
  c.keyDown("KeyA", 0x61);
  c.typeKeysym(0x62);
  c.scroll({ x: 0, y: 1 }, false);
  c.setHost(true);
  assert.deepEqual(sent, []);
  assert.equal(requests(), 0);
  assert.equal(c.queue.length, 0);
  assert.equal(c.buttons.size + c.keys.size, 0);
});
