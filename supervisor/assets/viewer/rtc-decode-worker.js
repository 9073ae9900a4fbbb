// The page's own decoder of WebRTC video (`render=decoder`), a dedicated module worker that
// rtc-decoder.js starts: the video receiver's RTCRtpScriptTransform hands it each encoded
// frame as soon as its packets are in, FrameDecoder (encoded-frames.js) decodes it with
// WebCodecs, and it is painted at once onto an OffscreenCanvas whose placeholder is the page's
// #screen canvas. A worker, not the page: the transform runs in one anyway, and Chromium
// holds the page's own tasks after a key press until its next frame is out (stream-worker.js).
//
// Page → worker: {type: "canvas", canvas}, {type: "stop"}. Worker → page: {event, detail}
// with "painted" ({width, height, rtpTimestamp, receivedMs, decodedEpochMs, key} for each frame),
// "config", "unsupported", "need-key", "error" (FrameDecoder's events) and "stats" (its
// counts, every second).

import { FrameDecoder } from "./encoded-frames.js";
import { Painter } from "./paint.js";

let painter = null;
let current = null;

const post = (event, detail) => postMessage({ event, detail });

/** The frame being painted, and the newest one decoded meanwhile (older ones are skipped). */
let painting = false;
let queued = null;

function draw(frame, meta) {
  if (!painter) return;
  // FrameDecoder closes its frame when this returns: the painting keeps a reference.
  const own = frame.clone();
  if (painting) {
    if (queued) {
      queued.frame.close();
      if (current) current.stats.skipped = (current.stats.skipped || 0) + 1;
    }
    queued = { frame: own, meta };
    return;
  }
  paint(own, meta);
}

async function paint(frame, meta) {
  painting = true;
  try {
    await painter.frameRgba(frame);
    post("painted", { width: frame.displayWidth, height: frame.displayHeight, rtpTimestamp: meta.rtpTimestamp, receivedMs: meta.receivedMs, decodedEpochMs: Date.now(), key: meta.key });
  } catch (e) {
    post("error", `painting a frame: ${e && e.message ? e.message : e}`);
  } finally {
    frame.close();
    painting = false;
  }
  const next = queued;
  queued = null;
  if (next) paint(next.frame, next.meta);
}

/** One receiver's transform: its frames go to a decoder of their own, never back unless passed. */
async function serve(transformer) {
  const reader = transformer.readable.getReader();
  const writer = transformer.writable.getWriter();
  if (current) current.stop();
  const decoder = new FrameDecoder({
    draw,
    pass: (f) => writer.write(f).catch(() => {}),
    on: (event, detail) => post(event, detail),
  });
  current = decoder;
  for (;;) {
    let next;
    try {
      next = await reader.read();
    } catch {
      break;
    }
    if (next.done || current !== decoder) break;
    decoder.take(next.value);
  }
  decoder.stop();
}

if (typeof self.RTCTransformEvent === "function" || "onrtctransform" in self) {
  self.onrtctransform = (ev) => {
    serve(ev.transformer);
  };
}

setInterval(() => {
  if (current) post("stats", { ...current.stats });
}, 1000);

onmessage = ({ data: m }) => {
  if (!m || typeof m !== "object") return;
  if (m.type === "canvas" && m.canvas) painter = new Painter(m.canvas);
  if (m.type === "stop") {
    if (current) current.stop();
    self.close();
  }
};
