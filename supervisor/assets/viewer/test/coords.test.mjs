import test from "node:test";
import assert from "node:assert/strict";
import { containBox, clientToDesktop, desktopToElement } from "../coords.js";

const screen = { width: 1280, height: 720 };

test("a picture of the element's own shape fills it", () => {
  assert.deepEqual(containBox(640, 360, 1280, 720), { x: 0, y: 0, width: 640, height: 360 });
});

test("a taller window letterboxes top and bottom", () => {
  assert.deepEqual(containBox(1000, 1000, 1280, 720, 4), { x: 0, y: 218.75, width: 1000, height: 562.5 });
});

test("a wider window pillarboxes left and right", () => {
  assert.deepEqual(containBox(2000, 720, 1280, 720), { x: 360, y: 0, width: 1280, height: 720 });
});

test("the box snaps to device pixels", () => {
  // 1001x1000: the picture is 563.06 high; at DPR 1 it is 563 device pixels placed at 219,
  // at DPR 2 it is 1126 device pixels placed at 218.5 CSS pixels (half CSS pixels exist)
  assert.deepEqual(containBox(1001, 1000, 1280, 720, 1), { x: 0, y: 219, width: 1001, height: 563 });
  assert.deepEqual(containBox(1001, 1000, 1280, 720, 2), { x: 0, y: 218.5, width: 1001, height: 563 });
  assert.equal(containBox(1000, 1000, 1280, 720, 1).y, 219);
  assert.equal(containBox(1000, 1000, 1280, 720, 4).y, 218.75);
  assert.equal(containBox(1000, 1000, 1280, 720, 0).y, 219); // nonsense DPR → 1
});

test("unknown sizes give null", () => {
  assert.equal(containBox(0, 100, 1280, 720), null);
  assert.equal(containBox(100, 100, 0, 0), null);
  assert.equal(clientToDesktop(1, 1, { left: 0, top: 0, width: 100, height: 100 }, null, null), null);
});

test("client coordinates map through the letterbox to desktop pixels", () => {
  const rect = { left: 10, top: 20, width: 1000, height: 1000 };
  const video = { width: 1280, height: 720 };
  // picture: x 0..1000, y 218.75..781.25 (DPR 4 keeps it exact) inside the element
  const map = (cx, cy) => clientToDesktop(cx, cy, rect, video, screen, 4);
  assert.deepEqual(map(10, 20 + 218.75), { x: 0, y: 0, inside: true });
  assert.deepEqual(map(10 + 500, 20 + 500), { x: 640, y: 360, inside: true });
  assert.deepEqual(map(10 + 999.9, 20 + 781.2), { x: 1279, y: 719, inside: true });
  // in the black bar above the picture: outside, clamped to the top edge
  assert.deepEqual(map(10 + 500, 20 + 100), { x: 640, y: 0, inside: false });
  // far outside: clamped to the far corner
  assert.deepEqual(map(5000, 5000), { x: 1279, y: 719, inside: false });
});

test("a downscaled video still maps to full desktop coordinates", () => {
  const rect = { left: 0, top: 0, width: 640, height: 360 };
  const p = clientToDesktop(320, 180, rect, { width: 960, height: 540 }, { width: 1920, height: 1080 });
  assert.deepEqual(p, { x: 960, y: 540, inside: true });
});

test("before the first frame the screen size gives the aspect ratio", () => {
  const rect = { left: 0, top: 0, width: 1280, height: 1000 };
  const p = clientToDesktop(640, 500, rect, { width: 0, height: 0 }, screen);
  assert.deepEqual(p, { x: 640, y: 360, inside: true });
});

test("desktop to element is the inverse, with the scale", () => {
  const p = desktopToElement(640, 360, 1000, 1000, { width: 1280, height: 720 }, screen, 4);
  assert.deepEqual(p, { left: 500, top: 218.75 + 281.25, scaleX: 1000 / 1280, scaleY: 562.5 / 720 });
  for (const [x, y] of [[0, 0], [100, 200], [1279, 719]]) {
    const e = desktopToElement(x, y, 1000, 1000, null, screen, 4);
    const back = clientToDesktop(e.left + 0.1, e.top + 0.1, { left: 0, top: 0, width: 1000, height: 1000 }, null, screen, 4);
    assert.deepEqual([back.x, back.y], [x, y]);
  }
});
