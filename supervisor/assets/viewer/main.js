// The viewer page: wires the DOM to one transport session at a time (WebRTC through neko,
// webrtc.js, or deskd's native stream, native.js), the input controller, the cursor overlay
// and the still shown before live video; owns choosing the transport, reconnecting (with
// backoff and a stale-connection watchdog) and the status line. The logic that can be tested
// without a browser lives in the other modules.

import { Backoff, classifyClose } from "./backoff.js";
import { clientToDesktop, desktopToElement } from "./coords.js";
import { InputController, WheelAccumulator, xButton } from "./input.js";
import { isModifierKeysym, keysymForChar, keysymForEvent } from "./keysym.js";
import { NativeSession } from "./native.js";
import { available as remoteAvailable, RemoteNativeSession, startWorker } from "./native-remote.js";
import { canPaintFrames, FramePainter } from "./frame-painter.js";
import { canDecodeRtc, RtcDecoder } from "./rtc-decoder.js";
import { encodePing } from "./protocol.js";
import { ScreenView } from "./screen.js";
import { SoundSession } from "./sound.js";
import { stillLoaded, stillUrl, stillWidthFor } from "./still.js";
import { CONTROL_WAIT_MS, ControlTracker, liveDetail, stateText, unsupportedText } from "./status.js";
import { TouchGestures } from "./touch.js";
import { chooseRender, chooseTransport, forcedCodec, forcedTransport, parseSession, RENDER_DECODER, RENDER_VIDEO, transportLabel, WEBRTC, WS } from "./transport.js";
import { NO_MEDIA, WebRtcSession } from "./webrtc.js";

const SIGNALING_PATH = "/stream/signaling";
const STREAM_PATH = "/stream/ws";
const STALE_MS = 12500; // neko's reference client: nothing received for 12.5 s = dead
const WATCHDOG_MS = 2000;
const OPEN_TIMEOUT_MS = 10000;
const STABLE_MS = 5000; // live this long before the backoff starts over
const PING_MS = 5000;
const PASTE_WAIT_MS = 300;
const CONTROL_L = 0xffe3;
const CONTROL_R = 0xffe4;
/** A still that failed is asked for again this many times, this long apart, until video. */
const STILL_RETRIES = 3;
const STILL_RETRY_MS = 300;
const FRAME_RING = 1000;

const $ = (id) => document.getElementById(id);
const els = {
  app: $("app"),
  stage: $("stage"),
  video: $("screen"),
  canvas: $("screen-canvas"),
  still: $("still"),
  cursor: $("cursor"),
  keys: $("keys"),
  overlay: $("overlay"),
  overlayText: $("overlay-text"),
  status: $("status"),
  agent: $("agent"),
  audio: $("audio"),
  sound: $("sound"),
  keyboard: $("keyboard"),
  fullscreen: $("fullscreen"),
};

const screenView = new ScreenView({ video: els.video, canvas: els.canvas, still: els.still });
const control = new ControlTracker();

const stamp = () => ({ perf: performance.now(), epochMs: Date.now() });

/** State for people, tests and benchmarks: `window.__deskdViewer`. */
const debug = {
  status: "connecting",
  statusText: "",
  /** "webrtc" or "ws": the transport of the current (or last) connection. */
  transport: null,
  /** The native stream's codec ("h264" or "jpeg"), null on WebRTC. */
  codec: null,
  /** Sound next to the native stream (sound.js): "off", "connecting", "playing", "blocked", "retrying". */
  sound: "off",
  /** Audio packets the sound session received (a promise). */
  soundPackets: () => sound.packetsReceived(),
  /** Why the transport is not the other one, when the browser lacks something. */
  transportProblem: null,
  /** "control" or "view", from /api/session or the native stream's hello; null: unknown. */
  access: null,
  session: null,
  sessionId: null,
  isHost: false,
  screen: null,
  peer: "new",
  dataChannel: "closed",
  received: [],
  sent: [],
  closes: [],
  errors: [],
  cursorImages: 0,
  cursorPositions: 0,
  rttMs: null,
  connects: 0,
  agentActive: false,
  controlRefused: false,
  /**
   * When the still was shown (`{perf, epochMs, width, height}`) and the first live video
   * frame (`{perf, epochMs}`).
   */
  firstStill: null,
  firstVideo: null,
  /**
   * The native stream's decoded frames, newest last (at most FRAME_RING): `{seq, captureUs,
   * key, receivedMs, decodedPerf, decodedEpochMs}`; captureUs is the server's wall clock.
   */
  frames: [],
  /** The native stream's tiles, newest last (at most FRAME_RING): `{seq, x, y, width, height, drawn, receivedEpochMs}`. */
  tiles: [],
  stream: null,
  /** Bytes the stream worker's socket carried (the page's own sockets are the page's to count). */
  workerBytes() {
    const s = session;
    return s && s instanceof RemoteNativeSession ? (s.stats.bytesIn || 0) + (s.stats.bytesOut || 0) : 0;
  },
  /** The WebRTC session's peer connection, as a list (empty without one). */
  peerConnections() {
    return session && session.pc ? [session.pc] : [];
  },
  /**
   * The page's own WebRTC decoder's counts: `painted` now, and the worker's `received`,
   * `repeats`, `decoded`, `dropped`, `passed` (at most a second old); null without one.
   */
  rtcDecoder() {
    const f = session && session.frames;
    return f instanceof RtcDecoder ? { painted: f.painted, ...(f.stats || {}) } : null;
  },
  async framesDecoded() {
    const s = session;
    if (!s) return 0;
    if (s.name === WS) return s.stats.decoded;
    return s.framesDecoded();
  },
};
window.__deskdViewer = debug;

// Anything the Content-Security-Policy blocks is a bug in the page; keep it visible.
debug.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  remember(debug.cspViolations, `${e.effectiveDirective} ${e.blockedURI}`);
});

function remember(list, item, limit = 500) {
  list.push(item);
  if (list.length > limit) list.shift();
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
// How WebRTC's video is shown (transport.js chooseRender): decoded by the page itself where
// the browser can (rtc-decoder.js), else by the <video>; `?render=canvas|video` forces the
// others. docs/viewer.md has the figures.
const webrtcRender = chooseRender(new URLSearchParams(location.search).get("render"), { decoder: canDecodeRtc(), canvas: canPaintFrames() });
debug.render = webrtcRender;
/** True while the page paints WebRTC's frames itself (decoder or canvas), for the bench's probe. */
debug.paintWebRtcFrames = webrtcRender !== RENDER_VIDEO;
const sound = new SoundSession({
  url: socketUrl(SIGNALING_PATH),
  audio: els.sound,
  on: (state) => {
    debug.sound = state;
    renderAudioButton();
  },
});
let useStreamWorker = remoteAvailable() && new URLSearchParams(location.search).get("worker") !== "0";
// A worker is started once the still is on screen (its module loads would slow the still on a
// busy machine), or when the first native session needs one, whichever comes first. A browser
// without module workers keeps the stream in the page; a worker that fails to load (deskd
// restarting) is only dropped: the next session starts another.
let spareWorker = null;
function prepareWorker() {
  if (!useStreamWorker || spareWorker) return;
  const w = startWorker();
  if (!w) {
    useStreamWorker = false;
    return;
  }
  spareWorker = w;
  w.onerror = () => {
    if (spareWorker === w) spareWorker = null;
  };
}
const forced = forcedTransport(location.search);
const codec = forcedCodec(location.search);
const can = {
  webcodecs: typeof globalThis.VideoDecoder === "function" && typeof globalThis.EncodedVideoChunk === "function",
  images: typeof globalThis.createImageBitmap === "function",
  webrtc: typeof globalThis.RTCPeerConnection === "function",
};

// ---- status line ----------------------------------------------------------------------------

let countdownTimer = null;

function setStatus(state, detail = "", base = null) {
  const head = base || stateText(state);
  const text = detail ? `${head} ${detail}` : head;
  debug.status = state;
  debug.statusText = text;
  els.status.textContent = text;
  els.app.dataset.status = state;
  // While connecting over a still, the still is the point: no dimming overlay over it.
  els.overlay.hidden = state === "live" || (state === "connecting" && screenView.stillShown);
  els.overlayText.textContent = text;
}

function currentDetail() {
  return liveDetail({
    screen: debug.screen,
    access: debug.access,
    isHost: debug.isHost,
    refused: debug.controlRefused,
    transport: debug.transport,
    codec: debug.codec,
    rttMs: debug.rttMs,
  });
}

function connectingDetail() {
  const parts = [];
  if (screenView.stillShown) parts.push("still picture, not live yet");
  if (debug.access === "view") parts.push("view only");
  const t = transportLabel(debug.transport, debug.codec);
  if (t) parts.push(t);
  return parts.length ? `· ${parts.join(" · ")}` : "";
}

function refreshStatus() {
  if (debug.status === "live") setStatus("live", currentDetail());
  else if (debug.status === "connecting") setStatus("connecting", connectingDetail());
}

function setAccess(access) {
  debug.access = access;
  input.setViewOnly(access === "view");
  refreshStatus();
}

// ---- choosing the transport -----------------------------------------------------------------

let sessionInfo = null;

/** GET /api/session: the parsed answer, null when this deskd has none, or the last one known. */
async function fetchSessionInfo() {
  try {
    const r = await fetch("/api/session", { credentials: "same-origin", cache: "no-store" });
    if (r.status === 404 || r.status === 405) return null; // an older deskd
    if (!r.ok) return sessionInfo;
    return parseSession(await r.json()) || sessionInfo;
  } catch {
    return sessionInfo; // deskd restarting: keep what it said before
  }
}

function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

// ---- connection lifecycle -----------------------------------------------------------------

const backoff = new Backoff();
let session = null;
let connecting = false;
let liveSince = null;
let reconnectTimer = null;
let pingTimer = null;

async function connect() {
  if (connecting || session) return;
  connecting = true;
  clearTimeout(reconnectTimer);
  try {
    sessionInfo = await fetchSessionInfo();
  } finally {
    connecting = false;
  }
  clearInterval(countdownTimer);
  debug.session = sessionInfo;
  if (sessionInfo) setAccess(sessionInfo.access);
  const choice = chooseTransport({ forced, codec, session: sessionInfo, can });
  debug.transportProblem = choice.problem;
  if (!choice.transport) {
    setStatus("unsupported", "", unsupportedText(choice.problem, window.isSecureContext));
    return;
  }
  debug.connects += 1;
  debug.transport = choice.transport;
  debug.codec = choice.codec;
  const paintRtc = choice.transport === WEBRTC && webrtcRender !== RENDER_VIDEO;
  screenView.use(choice.transport, { canvas: choice.transport === WS || paintRtc });
  syncSound();
  renderAudioButton();
  const on = (ev, d) => onSession(s, ev, d);
  const s =
    choice.transport === WS
      ? nativeSession(on, choice.codec)
      : new WebRtcSession({ url: socketUrl(SIGNALING_PATH), audio: wantAudio, video: els.video, on, frames: paintRtc ? rtcPainter() : null });
  session = s;
  if (debug.status !== "unavailable" && debug.status !== "reconnecting") setStatus("connecting", connectingDetail());
  s.start();
  setTimeout(() => {
    if (session === s && !s.opened) s.close(4000, "open timeout");
  }, OPEN_TIMEOUT_MS);
}

/** What paints WebRTC's frames on a fresh canvas: the page's own decoder, or a FramePainter. */
function rtcPainter() {
  const canvas = screenView.freshCanvas();
  return webrtcRender === RENDER_DECODER ? new RtcDecoder({ canvas }) : new FramePainter({ canvas });
}

/**
 * The native stream's session: in a worker that paints an OffscreenCanvas where the browser
 * can (stream-worker.js says why), in the page otherwise or with `?worker=0`. Each gets a
 * fresh canvas (one handed to a worker cannot be painted from here again).
 */
function nativeSession(on, codec) {
  const url = socketUrl(codec === "jpeg" ? `${STREAM_PATH}?codec=jpeg` : STREAM_PATH);
  prepareWorker();
  debug.streamWorker = useStreamWorker;
  const canvas = screenView.freshCanvas();
  if (useStreamWorker) {
    const worker = spareWorker;
    spareWorker = null;
    return new RemoteNativeSession({ url, canvas, on, worker });
  }
  return new NativeSession({ url, on, draw: (frame) => drawFrame(frame), drawTile: (t) => screenView.drawTile(t), drawCopy: (c) => screenView.painter.copy(c) });
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
    case "session-id":
      debug.sessionId = d;
      break;
    case "hello":
      debug.stream = d;
      break;
    case "access":
      setAccess(d);
      break;
    case "host":
      debug.isHost = d.isHost;
      control.host(d.isHost);
      debug.controlRefused = control.refused;
      input.setHost(d.isHost);
      renderCursor();
      refreshStatus();
      break;
    case "screen":
      debug.screen = { width: d.width, height: d.height };
      renderCursor();
      refreshStatus();
      break;
    case "input-open":
      inputOpen(s, d);
      break;
    case "server-message":
      serverMessage(d);
      break;
    case "frame":
      remember(debug.frames, { ...d, decodedPerf: performance.now(), decodedEpochMs: d.decodedEpochMs ?? Date.now() }, FRAME_RING);
      if (d.width && screenView.remotePainted(d.width, d.height)) renderCursor();
      if (!s.shownFirst) {
        s.shownFirst = true;
        firstFrame(s);
      }
      break;
    case "tile":
      remember(debug.tiles, { ...d, receivedEpochMs: d.receivedMs ?? Date.now() }, FRAME_RING);
      break;
    case "painted":
      if (screenView.remotePainted(d.width, d.height)) renderCursor();
      break;
    case "render-fallback":
      // The page cannot decode this stream's codec: the <video> shows it.
      debug.renderFallback = d;
      debug.paintWebRtcFrames = false;
      screenView.use(WEBRTC, { canvas: false });
      renderCursor();
      break;
    case "first-frame":
      s.shownFirst = true;
      firstFrame(s);
      break;
    case "peer-state":
      debug.peer = d;
      if (d === "disconnected" && debug.status === "live") setStatus("reconnecting", "…"); // ICE may recover; "failed" comes if not
      else if (d === "connected" && s.shownFirst) setStatus("live", currentDetail());
      break;
    case "clipboard":
      if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(d).catch(() => {});
      break;
    case "unsupported":
      s.fatal = `This browser cannot decode the desktop's video (${d.codec}: ${d.reason})`;
      s.close(4000, "codec unsupported");
      break;
    case "error":
      remember(debug.errors, String(d && d.message ? d.message : d));
      break;
    case "close":
      onClosed(s, d);
      break;
    default:
      break;
  }
}

function firstFrame(s) {
  if (session !== s) return;
  if (!debug.firstVideo) debug.firstVideo = stamp();
  screenView.firstFrame();
  liveSince = Date.now();
  setStatus("live", currentDetail());
  renderCursor();
}

function drawFrame(frame) {
  if (screenView.draw(frame)) renderCursor();
}

function inputOpen(s, open) {
  debug.dataChannel = open ? "open" : "closed";
  input.setChannelOpen(open);
  clearInterval(pingTimer);
  if (!open) return;
  pingTimer = setInterval(() => {
    if (session === s) s.sendInput(encodePing(Date.now()));
  }, PING_MS);
}

async function onClosed(s, d) {
  input.setChannelOpen(false);
  clearInterval(pingTimer);
  cursorState.remote = null;
  cursorState.local = null;
  renderCursor();
  debug.dataChannel = "closed";
  debug.peer = "closed";
  const path = s.name === WS ? STREAM_PATH : SIGNALING_PATH;
  const policy = d.code === 1008 && s.name !== WS;
  const probe = d.opened || policy ? undefined : await probeRefusal(path);
  const kind = classifyClose(d.code, probe, s.name);
  remember(debug.closes, { code: d.code, reason: d.reason, opened: d.opened, probe, kind, transport: s.name });
  if (session !== s) return;
  session = null;
  if (s.fatal) {
    setStatus("unsupported", "", s.fatal);
    return;
  }
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
 * = the token, 503 = not ready); if that passes auth (400/426: not a WebSocket request),
 * `/readyz` says whether the desktop is up.
 */
async function probeRefusal(path) {
  try {
    const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
    if ([401, 403, 502, 503, 504].includes(r.status)) return r.status;
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

// ---- the still: a picture at once -------------------------------------------------------------

async function showStill() {
  for (let attempt = 1; !(await stillLoaded(els.still)); attempt += 1) {
    if (attempt > STILL_RETRIES || screenView.everLive) {
      // No display, or deskd without the agent API: wait for video.
      screenView.noStill();
      remember(debug.errors, "still: no picture");
      return;
    }
    await new Promise((r) => setTimeout(r, STILL_RETRY_MS));
    if (screenView.everLive) return;
    els.still.removeAttribute("srcset");
    els.still.src = `${stillUrl(stillWidthFor(window.innerWidth, window.devicePixelRatio))}&attempt=${attempt}`;
  }
  if (!screenView.adoptStill()) return;
  debug.firstStill = { ...stamp(), width: els.still.naturalWidth, height: els.still.naturalHeight };
  refreshStatus();
  renderCursor();
}

// ---- media ----------------------------------------------------------------------------------

els.video.addEventListener("resize", () => renderCursor());

function unmuteOnGesture() {
  if (wantAudio && els.video.muted && debug.transport !== WS) {
    els.video.muted = false;
    els.video.play().catch(() => {});
  }
  if (sound.state === "blocked") sound.resume();
}

/** Whether neko's sound can come next to the native stream (a second, audio-only session). */
function soundBesideNative() {
  return Boolean(sessionInfo && sessionInfo.webrtc.configured && can.webrtc);
}

/** Sound next to the native stream while it is wanted and possible (sound.js); WebRTC carries its own. */
function syncSound() {
  if (wantAudio && debug.transport === WS && soundBesideNative()) sound.start();
  else sound.stop();
}

function renderAudioButton() {
  const native = debug.transport === WS;
  const on = wantAudio && (!native || sound.wanted);
  els.audio.disabled = native && !soundBesideNative();
  els.audio.title = !native
    ? ""
    : !soundBesideNative()
      ? "Sound comes from neko (WebRTC), which this desktop does not run"
      : sound.state === "blocked"
        ? "Click the desktop to let the browser play sound"
        : "";
  els.audio.setAttribute("aria-pressed", String(on));
  els.audio.textContent = on ? "Sound on" : "Sound off";
}

els.audio.addEventListener("click", () => {
  wantAudio = !wantAudio;
  try {
    localStorage.setItem("deskd.audio", wantAudio ? "on" : "off");
  } catch {
    /* storage disabled */
  }
  if (session) session.setAudio(wantAudio);
  els.video.muted = !wantAudio;
  if (wantAudio) els.video.play().catch(() => {});
  syncSound();
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

// ---- cursor ---------------------------------------------------------------------------------

const cursorState = { url: null, width: 0, height: 0, xhot: 0, yhot: 0, remote: null, local: null };

function serverMessage(m) {
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
    refreshStatus();
  }
}

/** The remote cursor image: at the local pointer while in control, else where the server says. */
function renderCursor() {
  const pos = debug.isHost ? cursorState.local : cursorState.remote;
  const show = Boolean(cursorState.url && pos && debug.screen);
  els.stage.classList.toggle("remote-cursor", Boolean(cursorState.url && debug.isHost));
  if (!show) {
    els.cursor.hidden = true;
    return;
  }
  const r = els.stage.getBoundingClientRect();
  const p = desktopToElement(pos.x - cursorState.xhot, pos.y - cursorState.yhot, r.width, r.height, screenView.size(), debug.screen, devicePixelRatio);
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
    if (session) session.sendInput(buf);
  },
  requestControl: () => {
    if (!session || debug.access === "view") return;
    const s = session;
    s.requestControl();
    const ticket = control.request();
    // neko answers a granted request with control/host; silence means it was refused (a
    // view-only link on an older deskd, or locked controls). Control granted and then taken
    // by someone else within the wait is not a refusal.
    setTimeout(() => {
      if (session !== s) return;
      debug.controlRefused = control.settle(ticket, debug.isHost);
      refreshStatus();
    }, CONTROL_WAIT_MS);
  },
});

function toDesktop(clientX, clientY) {
  if (!debug.screen) return null;
  return clientToDesktop(clientX, clientY, els.stage.getBoundingClientRect(), screenView.size(), debug.screen, devicePixelRatio);
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
  if (input.viewOnly) return;
  if (!session || text === "") {
    if (p) input.typeKeysym(p.keysym); // nothing local: paste the desktop's own clipboard
    return;
  }
  const ctrlHeld = input.isKeysymHeld(CONTROL_L) || input.isKeysymHeld(CONTROL_R);
  // Keep the user's combo (Ctrl+V, Ctrl+Shift+V in terminals): the clipboard is set and the
  // key pressed on the same socket, so the server handles them in this order. Otherwise the
  // server types the text.
  session.paste(text, p && ctrlHeld ? p.keysym : null);
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
setStatus("connecting");
showStill().finally(() => prepareWorker());
connect();
pollAgent();
