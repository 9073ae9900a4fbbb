// The viewer page: wires the DOM to a signaling session, the input controller and the cursor
// overlay; owns reconnecting (with backoff and a stale-connection watchdog) and the status
// line. The logic that can be tested without a browser lives in the other modules.

import { Backoff, classifyClose } from "./backoff.js";
import { clientToDesktop, desktopToElement } from "./coords.js";
import { InputController, WheelAccumulator, xButton } from "./input.js";
import { isModifierKeysym, keysymForChar, keysymForEvent } from "./keysym.js";
import { decodeServerMessage, encodePing } from "./protocol.js";
import { NekoSession } from "./signaling.js";
import { TouchGestures } from "./touch.js";

const SIGNALING_PATH = "/stream/signaling";
const STALE_MS = 12500; // neko's reference client: nothing received for 12.5 s = dead
const WATCHDOG_MS = 2000;
const OPEN_TIMEOUT_MS = 10000;
const MEDIA_TIMEOUT_MS = 30000;
const NO_MEDIA = "no media connection";
const STABLE_MS = 5000; // live this long before the backoff starts over
const PING_MS = 5000;
const PASTE_WAIT_MS = 300;
const CONTROL_L = 0xffe3;
const CONTROL_R = 0xffe4;
const CONTROL_WAIT_MS = 2500;

const $ = (id) => document.getElementById(id);
const els = {
  app: $("app"),
  stage: $("stage"),
  video: $("screen"),
  cursor: $("cursor"),
  keys: $("keys"),
  overlay: $("overlay"),
  overlayText: $("overlay-text"),
  status: $("status"),
  agent: $("agent"),
  audio: $("audio"),
  keyboard: $("keyboard"),
  fullscreen: $("fullscreen"),
};

/** State for people and tests: `window.__deskdViewer`. */
const debug = {
  status: "connecting",
  statusText: "",
  sessionId: null,
  isHost: false,
  screen: null,
  peer: "new",
  dataChannel: "closed",
  received: [],
  sent: [],
  closes: [],
  cursorImages: 0,
  cursorPositions: 0,
  rttMs: null,
  connects: 0,
  agentActive: false,
  controlRefused: false,
  async framesDecoded() {
    const pc = session && session.pc;
    if (!pc) return 0;
    let frames = 0;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
    });
    return frames;
  },
};
window.__deskdViewer = debug;

// Anything the Content-Security-Policy blocks is a bug in the page; keep it visible.
debug.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  remember(debug.cspViolations, `${e.effectiveDirective} ${e.blockedURI}`);
});

function remember(list, item) {
  list.push(item);
  if (list.length > 500) list.shift();
}

// ---- settings ---------------------------------------------------------------------------

function audioWanted() {
  const q = new URLSearchParams(location.search);
  const h = new URLSearchParams(location.hash.replace(/^#/, ""));
  for (const p of [q, h]) {
    if (p.has("audio")) return !["0", "false", "off", "no"].includes(p.get("audio"));
  }
  try {
    return localStorage.getItem("deskd.audio") === "on";
  } catch {
    return false;
  }
}

let wantAudio = audioWanted();

// ---- status line ----------------------------------------------------------------------------

const STATUS_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Connection lost — reconnecting",
  unauthorized: "Not authorized — open the link with the access token again",
  unavailable: "Desktop unavailable — retrying",
};

let countdownTimer = null;

function setStatus(state, detail = "", base = null) {
  const head = base || STATUS_TEXT[state];
  const text = detail ? `${head} ${detail}` : head;
  debug.status = state;
  debug.statusText = text;
  els.status.textContent = text;
  els.app.dataset.status = state;
  els.overlay.hidden = state === "live";
  els.overlayText.textContent = text;
}

function liveDetail() {
  const parts = [];
  if (debug.screen) parts.push(`${debug.screen.width}×${debug.screen.height}`);
  if (debug.isHost) parts.push("in control");
  else parts.push(debug.controlRefused ? "view only" : "click to control");
  if (debug.rttMs !== null) parts.push(`${debug.rttMs} ms`);
  return `· ${parts.join(" · ")}`;
}

function refreshLive() {
  if (debug.status === "live") setStatus("live", liveDetail());
}

// ---- connection lifecycle -----------------------------------------------------------------

const backoff = new Backoff();
let session = null;
let liveSince = null;
let reconnectTimer = null;
let pingTimer = null;

function signalingUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${SIGNALING_PATH}`;
}

function connect() {
  clearTimeout(reconnectTimer);
  clearInterval(countdownTimer);
  debug.connects += 1;
  if (debug.status !== "unavailable" && debug.status !== "reconnecting") setStatus("connecting");
  const s = new NekoSession({ url: signalingUrl(), audio: wantAudio, on: (ev, d) => onSession(s, ev, d) });
  session = s;
  s.start();
  setTimeout(() => {
    if (session === s && !s.opened) s.close(4000, "open timeout");
  }, OPEN_TIMEOUT_MS);
  setTimeout(() => {
    // Signaling worked but media never flowed: usually the media UDP port is not reachable
    // or [neko] nat1to1 advertises an address the browser cannot reach.
    if (session === s && !s.everConnected) s.close(4000, NO_MEDIA);
  }, MEDIA_TIMEOUT_MS);
}

function onSession(s, ev, d) {
  if (session !== s) return;
  switch (ev) {
    case "message":
      remember(debug.received, d.event);
      break;
    case "sent":
      remember(debug.sent, d);
      break;
    case "init":
      debug.sessionId = d.sessionId;
      debug.screen = d.screen;
      break;
    case "host":
      debug.isHost = d.isHost;
      if (d.isHost) debug.controlRefused = false;
      input.setHost(d.isHost);
      renderCursor();
      refreshLive();
      break;
    case "screen":
      debug.screen = d;
      renderCursor();
      refreshLive();
      break;
    case "track":
      attachTrack(d);
      break;
    case "datachannel":
      attachChannel(s, d);
      break;
    case "peer-state":
      debug.peer = d;
      if (d === "connected") {
        s.everConnected = true;
        liveSince = Date.now();
        setStatus("live", liveDetail());
      } else if (d === "disconnected" && debug.status === "live") {
        setStatus("reconnecting", "…"); // ICE may recover by itself; "failed" comes if not
      } else if (d === "failed") {
        s.close(4000, "peer failed");
      }
      break;
    case "peer-closed":
      input.setChannelOpen(false);
      debug.dataChannel = "closed";
      break;
    case "clipboard":
      if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(d).catch(() => {});
      break;
    case "error":
      console.warn("deskd viewer:", d);
      break;
    case "close":
      onClosed(s, d);
      break;
    default:
      break;
  }
}

async function onClosed(s, d) {
  input.setChannelOpen(false);
  clearInterval(pingTimer);
  cursorState.remote = null;
  cursorState.local = null;
  renderCursor();
  debug.dataChannel = "closed";
  debug.peer = "closed";
  const probe = d.opened || d.code === 1008 ? undefined : await probeRefusal();
  const kind = classifyClose(d.code, probe);
  remember(debug.closes, { code: d.code, reason: d.reason, opened: d.opened, probe, kind });
  if (session !== s) return;
  session = null;
  if (kind === "unauthorized") {
    setStatus("unauthorized");
    return;
  }
  if (liveSince !== null && Date.now() - liveSince >= STABLE_MS) backoff.reset();
  liveSince = null;
  const delay = backoff.next();
  const state = kind === "unavailable" ? "unavailable" : "reconnecting";
  const text = d.reason === NO_MEDIA ? "No video connection (is the media UDP port reachable?) — retrying" : null;
  const until = Date.now() + delay;
  const tick = () => setStatus(state, `in ${Math.max(1, Math.ceil((until - Date.now()) / 1000))} s`, text);
  tick();
  clearInterval(countdownTimer);
  countdownTimer = setInterval(tick, 250);
  reconnectTimer = setTimeout(connect, delay);
}

/**
 * A refused upgrade shows up as 1006 with no status. Ask the same URL over plain HTTP (401/403
 * = the token, 503 = neko not ready); if that passes auth (400: not a WebSocket request),
 * `/readyz` says whether the desktop is up.
 */
async function probeRefusal() {
  try {
    const r = await fetch(SIGNALING_PATH, { credentials: "same-origin", cache: "no-store" });
    if (r.status !== 400) return r.status;
    const ready = await fetch("/readyz", { credentials: "same-origin", cache: "no-store" });
    return ready.status === 503 ? 503 : r.status;
  } catch {
    return undefined;
  }
}

setInterval(() => {
  const s = session;
  if (s && s.opened && Date.now() - s.lastReceived > STALE_MS) s.close(4000, "stale connection");
}, WATCHDOG_MS);

window.addEventListener("online", () => {
  if (!session) connect();
});

// ---- media ----------------------------------------------------------------------------------

function attachTrack(ev) {
  const stream = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
  if (els.video.srcObject !== stream) els.video.srcObject = stream;
  els.video.play().catch(() => {});
}

els.video.addEventListener("resize", () => renderCursor());

function unmuteOnGesture() {
  if (wantAudio && els.video.muted) {
    els.video.muted = false;
    els.video.play().catch(() => {});
  }
}

function renderAudioButton() {
  els.audio.setAttribute("aria-pressed", String(wantAudio));
  els.audio.textContent = wantAudio ? "Sound on" : "Sound off";
}

els.audio.addEventListener("click", () => {
  wantAudio = !wantAudio;
  try {
    localStorage.setItem("deskd.audio", wantAudio ? "on" : "off");
  } catch {
    /* storage disabled */
  }
  if (session) {
    session.audio = wantAudio;
    session.send("signal/audio", { disabled: !wantAudio });
  }
  els.video.muted = !wantAudio;
  if (wantAudio) els.video.play().catch(() => {});
  renderAudioButton();
});

els.fullscreen.addEventListener("click", async () => {
  try {
    if (document.fullscreenElement) {
      await document.exitFullscreen();
    } else {
      await els.app.requestFullscreen({ navigationUI: "hide" });
      // In fullscreen, let Escape and system shortcuts reach the desktop where supported.
      if (navigator.keyboard && navigator.keyboard.lock) navigator.keyboard.lock().catch(() => {});
    }
  } catch {
    /* fullscreen refused (iframe without permission, old browser) */
  }
  focusKeys();
});

document.addEventListener("fullscreenchange", () => {
  els.fullscreen.setAttribute("aria-pressed", String(Boolean(document.fullscreenElement)));
  if (!document.fullscreenElement && navigator.keyboard && navigator.keyboard.unlock) navigator.keyboard.unlock();
});

// ---- data channel and cursor ---------------------------------------------------------------

const cursorState = { url: null, width: 0, height: 0, xhot: 0, yhot: 0, remote: null, local: null };

function attachChannel(s, dc) {
  const open = () => {
    if (session !== s) return;
    debug.dataChannel = "open";
    input.setChannelOpen(true);
    clearInterval(pingTimer);
    pingTimer = setInterval(() => {
      if (dc.readyState === "open") dc.send(encodePing(Date.now()));
    }, PING_MS);
  };
  if (dc.readyState === "open") open();
  dc.addEventListener("open", open);
  dc.addEventListener("close", () => {
    if (session !== s) return;
    debug.dataChannel = "closed";
    input.setChannelOpen(false);
  });
  dc.addEventListener("message", (ev) => {
    const m = decodeServerMessage(ev.data);
    if (!m) return;
    if (m.type === "cursor-image") {
      debug.cursorImages += 1;
      if (cursorState.url) URL.revokeObjectURL(cursorState.url);
      cursorState.url = URL.createObjectURL(new Blob([m.png], { type: "image/png" }));
      Object.assign(cursorState, { width: m.width, height: m.height, xhot: m.xhot, yhot: m.yhot });
      els.cursor.src = cursorState.url;
      renderCursor();
    } else if (m.type === "cursor-position") {
      debug.cursorPositions += 1;
      cursorState.remote = { x: m.x, y: m.y };
      renderCursor();
    } else if (m.type === "pong") {
      debug.rttMs = Math.max(0, Math.round(Date.now() - m.clientMs));
      refreshLive();
    }
  });
}

function videoSize() {
  return { width: els.video.videoWidth, height: els.video.videoHeight };
}

/** The remote cursor image: at the local pointer while in control, else where neko says. */
function renderCursor() {
  const pos = debug.isHost ? cursorState.local : cursorState.remote;
  const show = Boolean(cursorState.url && pos && debug.screen);
  els.stage.classList.toggle("remote-cursor", Boolean(cursorState.url && debug.isHost));
  if (!show) {
    els.cursor.hidden = true;
    return;
  }
  const r = els.stage.getBoundingClientRect();
  const p = desktopToElement(pos.x - cursorState.xhot, pos.y - cursorState.yhot, r.width, r.height, videoSize(), debug.screen, devicePixelRatio);
  if (!p) {
    els.cursor.hidden = true;
    return;
  }
  els.cursor.hidden = false;
  els.cursor.style.width = `${cursorState.width * p.scaleX}px`;
  els.cursor.style.height = `${cursorState.height * p.scaleY}px`;
  els.cursor.style.transform = `translate(${p.left}px, ${p.top}px)`;
}

window.addEventListener("resize", () => renderCursor());

// ---- input ----------------------------------------------------------------------------------

const input = new InputController({
  send: (buf) => {
    const dc = session && session.dc;
    if (dc && dc.readyState === "open") dc.send(buf);
  },
  requestControl: () => {
    if (!session) return;
    const s = session;
    s.send("control/request");
    // neko answers a granted request with control/host; silence means it was refused (a
    // view-only link, whose control messages the relay drops, or locked controls).
    setTimeout(() => {
      if (session === s && !debug.isHost) {
        debug.controlRefused = true;
        refreshLive();
      }
    }, CONTROL_WAIT_MS);
  },
});

function toDesktop(clientX, clientY) {
  if (!debug.screen) return null;
  return clientToDesktop(clientX, clientY, els.stage.getBoundingClientRect(), videoSize(), debug.screen, devicePixelRatio);
}

function focusKeys() {
  if (document.activeElement !== els.keys) els.keys.focus({ preventScroll: true });
}

const touch = new TouchGestures({
  map: (x, y) => toDesktop(x, y),
  onMove: (x, y) => {
    cursorState.local = { x, y };
    input.move(x, y);
    renderCursor();
  },
  onButton: (down, b) => (down ? input.buttonDown(b) : input.buttonUp(b)),
  onScroll: (steps) => input.scroll(steps, false),
});

els.stage.addEventListener("pointerdown", (ev) => {
  ev.preventDefault();
  unmuteOnGesture();
  if (ev.pointerType === "touch") {
    // Focusing the text field on a tap would pop up the on-screen keyboard every time; the
    // Keyboard button does that on request.
    touch.down(ev.pointerId, ev.clientX, ev.clientY);
    return;
  }
  focusKeys();
  const p = toDesktop(ev.clientX, ev.clientY);
  if (!p || !p.inside) return;
  try {
    els.stage.setPointerCapture(ev.pointerId);
  } catch {
    /* pointer already gone */
  }
  cursorState.local = { x: p.x, y: p.y };
  renderCursor();
  input.move(p.x, p.y);
  input.buttonDown(xButton(ev.button));
});

els.stage.addEventListener("pointermove", (ev) => {
  if (ev.pointerType === "touch") {
    touch.move(ev.pointerId, ev.clientX, ev.clientY);
    return;
  }
  const p = toDesktop(ev.clientX, ev.clientY);
  if (!p) return;
  els.stage.classList.toggle("outside", !p.inside);
  if (!p.inside && input.buttons.size === 0) return;
  cursorState.local = { x: p.x, y: p.y };
  renderCursor();
  // Plain hovering must not grab control from someone else; a held button or held key means
  // this viewer is already acting.
  if (input.isHost || input.buttons.size > 0) input.move(p.x, p.y);
});

function pointerEnd(ev) {
  if (ev.pointerType === "touch") {
    if (ev.type === "pointercancel") touch.cancel(ev.pointerId);
    else touch.up(ev.pointerId, ev.clientX, ev.clientY);
    return;
  }
  const p = toDesktop(ev.clientX, ev.clientY);
  // The end of a drag pins to the edge; a release outside the picture without a press is not input.
  if (p && (input.buttons.size > 0 || (p.inside && input.isHost))) input.move(p.x, p.y);
  if (ev.type === "pointercancel") input.releaseAll();
  else input.buttonUp(xButton(ev.button));
}
els.stage.addEventListener("pointerup", pointerEnd);
els.stage.addEventListener("pointercancel", pointerEnd);
els.stage.addEventListener("contextmenu", (ev) => ev.preventDefault());

const wheel = new WheelAccumulator();
els.stage.addEventListener(
  "wheel",
  (ev) => {
    ev.preventDefault();
    const p = toDesktop(ev.clientX, ev.clientY);
    if (!p || !p.inside) return;
    const steps = wheel.add(ev.deltaX, ev.deltaY, ev.deltaMode, ev.timeStamp);
    if (steps.x === 0 && steps.y === 0) return;
    cursorState.local = { x: p.x, y: p.y };
    renderCursor();
    input.move(p.x, p.y);
    // Ctrl+wheel (also trackpad pinch) zooms; if Ctrl is already held on the desktop, neko's
    // own Ctrl press/release around the scroll would release it, so do not ask for it.
    const ctrlHeld = input.isKeysymHeld(CONTROL_L) || input.isKeysymHeld(CONTROL_R);
    input.scroll(steps, ev.ctrlKey && !ctrlHeld);
  },
  { passive: false },
);

// Keyboard: a visually hidden textarea holds the focus, so dead keys, IME composition, paste
// and on-screen keyboards work; keys with a keysym are sent raw and never reach it.

let pendingPaste = null;

function typeText(text) {
  for (const ch of text) {
    const keysym = ch === "\n" ? 0xff0d : keysymForChar(ch);
    if (keysym !== null) input.typeKeysym(keysym);
  }
}

function firePendingPaste() {
  const p = pendingPaste;
  pendingPaste = null;
  if (!p) return;
  clearTimeout(p.timer);
  input.typeKeysym(p.keysym);
}

els.keys.addEventListener("keydown", (ev) => {
  unmuteOnGesture();
  if (ev.isComposing || ev.keyCode === 229) return; // the IME owns this key
  const keysym = keysymForEvent(ev);
  if (keysym === null) return; // dead key: the composed character comes with the next key
  const shortcut = ev.ctrlKey || ev.metaKey;
  if (shortcut && !ev.altKey && ev.code === "KeyV") {
    // Let the browser fire "paste" with the local clipboard; the key goes out from there.
    clearTimeout(pendingPaste && pendingPaste.timer);
    pendingPaste = { keysym, timer: setTimeout(firePendingPaste, PASTE_WAIT_MS) };
    return;
  }
  ev.preventDefault();
  if (ev.repeat) return; // X repeats held keys by itself
  if ([...ev.key].length === 1 && ev.getModifierState && ev.getModifierState("AltGraph")) input.releaseControlForAltGr();
  input.keyDown(ev.code, keysym);
});

els.keys.addEventListener("keyup", (ev) => {
  if (ev.isComposing || ev.keyCode === 229) return;
  ev.preventDefault();
  const released = input.keyUp(ev.code, keysymForEvent(ev));
  // macOS sends no keyup for keys released while Command was held.
  if (ev.key === "Meta" && released !== null) {
    for (const [code, k] of [...input.keys]) if (!isModifierKeysym(k)) input.keyUp(code, k);
  }
});

els.keys.addEventListener("paste", (ev) => {
  ev.preventDefault();
  const p = pendingPaste;
  pendingPaste = null;
  if (p) clearTimeout(p.timer);
  const text = ev.clipboardData ? ev.clipboardData.getData("text/plain") : "";
  if (!session || text === "") {
    if (p) input.typeKeysym(p.keysym); // nothing local: paste the desktop's own clipboard
    return;
  }
  const ctrlHeld = input.isKeysymHeld(CONTROL_L) || input.isKeysymHeld(CONTROL_R);
  if (p && ctrlHeld) {
    // Keep the user's combo (Ctrl+V, Ctrl+Shift+V in terminals): the clipboard is set and the
    // key pressed over the same WebSocket, so neko handles them in this order.
    session.send("clipboard/set", { text });
    session.send("control/keypress", { keysym: p.keysym });
  } else {
    session.send("control/paste", { text });
  }
});

els.keys.addEventListener("compositionend", (ev) => {
  if (ev.data) typeText(ev.data);
  els.keys.value = "";
});

els.keys.addEventListener("input", (ev) => {
  // On-screen keyboards send keydown "Unidentified" and the text only here.
  if (!ev.isComposing && ev.inputType === "insertText" && ev.data) typeText(ev.data);
  if (!ev.isComposing) els.keys.value = "";
});

function releaseEverything() {
  if (pendingPaste) firePendingPaste();
  input.releaseAll();
}
els.keys.addEventListener("blur", releaseEverything);
window.addEventListener("blur", releaseEverything);
document.addEventListener("visibilitychange", () => {
  if (document.hidden) releaseEverything();
});
window.addEventListener("pagehide", () => {
  releaseEverything();
  if (session) session.close(1000, "page closed");
});

// ---- "agent is acting" -----------------------------------------------------------------------

// deskd's agent API says when an AI agent drives the desktop (GET /api/agent {active}); show it
// so a person watching knows the pointer is not theirs to fight. Not there (no display, older
// deskd): ask rarely.
const AGENT_POLL_MS = 2000;
const AGENT_IDLE_POLL_MS = 30000;

async function pollAgent() {
  let next = AGENT_POLL_MS;
  try {
    const r = await fetch("/api/agent", { credentials: "same-origin", cache: "no-store" });
    if (r.ok) {
      const a = await r.json();
      const active = Boolean(a && a.active);
      debug.agentActive = active;
      els.agent.hidden = !active;
    } else {
      els.agent.hidden = true;
      next = AGENT_IDLE_POLL_MS;
    }
  } catch {
    next = AGENT_IDLE_POLL_MS;
  }
  setTimeout(pollAgent, document.hidden ? AGENT_IDLE_POLL_MS : next);
}

// Touch screens: a button to bring up the on-screen keyboard (focusing the text field).
// Elsewhere the desktop takes the keyboard at once, so typing works without a first click.
if (window.matchMedia && window.matchMedia("(pointer: coarse)").matches) els.keyboard.hidden = false;
else focusKeys();
els.keyboard.addEventListener("click", () => {
  els.keys.blur();
  els.keys.focus();
});

// ---- start ----------------------------------------------------------------------------------

renderAudioButton();
connect();
pollAgent();
