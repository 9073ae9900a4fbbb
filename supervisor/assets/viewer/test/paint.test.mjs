// Painting a decoded frame through an RGBA copy where the browser converts one (a quarter of
// drawImage's cost in software), drawImage where it does not.
import test from "node:test";
import assert from "node:assert/strict";
import { Painter } from "../paint.js";

globalThis.ImageData ??= class {
  constructor(w, h) {
    Object.assign(this, { width: w, height: h, data: new Uint8ClampedArray(w * h * 4) });
  }
};

function canvas() {
  const ops = [];
  return {
    width: 0,
    height: 0,
    ops,
    getContext: () => ({
      drawImage: (f) => ops.push(["drawImage", f]),
      putImageData: (img, x, y) => ops.push(["putImageData", img.data[0], x, y]),
    }),
  };
}

function frame({ rgba = true, width = 4, height = 2 } = {}) {
  return {
    displayWidth: width,
    displayHeight: height,
    visibleRect: { width, height },
    allocationSize: ({ format } = {}) => (format === "RGBA" && rgba ? width * height * 4 : (width * height * 3) / 2),
    copyTo: async (buf) => {
      buf[0] = 200;
    },
  };
}

test("a browser that converts to RGBA: copy, then putImageData; the size change reported", async () => {
  const c = canvas();
  const p = new Painter(c);
  assert.equal(Painter.convertsToRgba(frame()), true);
  assert.equal(await p.frameRgba(frame()), true);
  assert.deepEqual(c.ops, [["putImageData", 200, 0, 0]]);
  assert.deepEqual([c.width, c.height], [4, 2]);
  assert.equal(await p.frameRgba(frame()), false, "same size");
  assert.equal(p.drawn, true);
});

test("a browser that would copy I420 whatever the format: drawImage", async () => {
  const c = canvas();
  const p = new Painter(c);
  const f = frame({ rgba: false });
  assert.equal(Painter.convertsToRgba(f), false);
  assert.equal(Painter.convertsToRgba({ displayWidth: 1, displayHeight: 1 }), false, "no copyTo");
  await p.frameRgba(f);
  assert.deepEqual(c.ops, [["drawImage", f]]);
});
