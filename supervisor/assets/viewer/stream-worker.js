// The native stream in a dedicated worker (module worker, started by native-remote.js): the
// WebSocket, the H.264 decoder and the painting all run here, onto an OffscreenCanvas whose
// placeholder is the page's #screen canvas.
//
// Why: after a key press Chromium defers the page's own tasks, WebSocket messages included,
// until its next frame is out. Measured in the stream bench: a tile reached the page's main
// thread 17 ms after the key press and a worker 3 ms after it. Painted here, it is in that
// next frame (photon about 15 ms after the key), not the one after it (about 32 ms).
//
// Page → worker: {type: "start", url, canvas}, {type: "input", buf}, {type: "paste", text,
// keysym}, {type: "close", code, reason}. Worker → page: {event, detail, state} for each of
// the session's events (native.js), where state is {opened, lastReceived, inputOpen, stats}.

import { NativeSession } from "./native.js";
import { Painter } from "./paint.js";

let session = null;
let painter = null;
let stateTimer = null;

function state() {
  if (!session) return null;
  return { opened: session.opened, lastReceived: session.lastReceived, inputOpen: session.inputOpen, stats: { ...session.stats } };
}

function post(event, detail) {
  postMessage({ event, detail, state: state() });
}

function start(url, canvas) {
  painter = new Painter(canvas);
  session = new NativeSession({
    url,
    on: (event, detail) => {
      post(event, detail);
      // A session lives for one socket: once it is closed, this worker has nothing left to do.
      if (event === "close") end();
    },
    draw: (frame, meta) => {
      painter.frame(frame);
      // Stamped here: the page's own clock reads it later, when its turn comes.
      meta.decodedEpochMs = Date.now();
      meta.width = frame.displayWidth;
      meta.height = frame.displayHeight;
    },
    drawTile: (t) => painter.tile(t),
    drawCopy: (c) => painter.copy(c),
  });
  session.start();
  session.ws.addEventListener("open", () => post("state"));
  // The page's stale watchdog reads lastReceived; keep it current between events.
  stateTimer = setInterval(() => post("state"), 1000);
}

/** Stops reporting and ends the worker once the close frame had time to go out. */
function end() {
  clearInterval(stateTimer);
  setTimeout(() => self.close(), 500);
}

onmessage = ({ data: m }) => {
  if (!m || typeof m !== "object") return;
  switch (m.type) {
    case "start":
      if (!session) start(m.url, m.canvas);
      break;
    case "input":
      if (session) session.sendInput(m.buf);
      break;
    case "paste":
      if (session) session.paste(m.text, m.keysym);
      break;
    case "close":
      if (session) session.close(m.code, m.reason);
      end();
      break;
    default:
      break;
  }
};
