// The native stream's session as the page sees it when the stream runs in a worker
// (stream-worker.js): the same properties, methods and events as NativeSession (native.js),
// which main.js drives either way. The worker gets the canvas as an OffscreenCanvas (so a
// canvas serves one session: the caller passes a fresh one) and reports each event with the
// session's state. `available()` says whether this browser can run it (module workers and
// OffscreenCanvas); the page falls back to NativeSession in the page otherwise.

import { emptyStats } from "./native.js";

/** The worker's module, next to this one (whatever path the page is served under). */
export const WORKER_URL = new URL("./stream-worker.js", import.meta.url).href;

/**
 * Starts a stream worker (its modules load while the page does the rest); null when the
 * browser does not do module workers (it never reads the `type` option).
 */
export function startWorker(WorkerImpl = globalThis.Worker) {
  let module = false;
  const w = new WorkerImpl(WORKER_URL, {
    get type() {
      module = true;
      return "module";
    },
  });
  if (module) return w;
  w.terminate();
  return null;
}

export function available(g = globalThis) {
  return Boolean(g.Worker && g.OffscreenCanvas && g.HTMLCanvasElement && "transferControlToOffscreen" in g.HTMLCanvasElement.prototype);
}

export class RemoteNativeSession {
  /**
   * - `url`: the WebSocket URL of /stream/ws; `canvas`: a canvas that was never drawn on;
   * - `on(event, detail)`: as NativeSession's (a worker that fails, e.g. its script could not
   *   be fetched while deskd restarts, is an "error" and a "close" with 4000: the page retries);
   * - `worker`: a worker from `startWorker()` that no session used yet (else one is started);
   * - `WorkerImpl`, `now` for tests.
   */
  constructor({ url, canvas, on = () => {}, worker = null, WorkerImpl = globalThis.Worker, now = () => Date.now() }) {
    Object.assign(this, { url, canvas, on, WorkerImpl, now });
    this.name = "ws";
    this.worker = worker;
    this.opened = false;
    this.closed = false;
    this.lastReceived = now();
    this.inputOpen = false;
    this.stats = emptyStats();
  }

  start() {
    const w = this.worker || startWorker(this.WorkerImpl);
    this.worker = w;
    if (!w) {
      this.on("error", "stream worker: this browser does not run module workers");
      this.close(4000, "stream worker failed");
      return;
    }
    w.onmessage = (ev) => this.fromWorker(ev.data);
    w.onerror = (ev) => {
      if (ev && typeof ev.preventDefault === "function") ev.preventDefault();
      if (this.closed) return;
      this.on("error", `stream worker: ${ev && ev.message ? ev.message : "failed"}`);
      this.close(4000, "stream worker failed");
    };
    const offscreen = this.canvas.transferControlToOffscreen();
    w.postMessage({ type: "start", url: this.url, canvas: offscreen }, [offscreen]);
  }

  fromWorker(m) {
    if (this.closed || !m || typeof m !== "object") return;
    if (m.state) {
      this.opened = Boolean(m.state.opened);
      this.lastReceived = Number(m.state.lastReceived) || this.lastReceived;
      this.inputOpen = Boolean(m.state.inputOpen);
      if (m.state.stats) this.stats = m.state.stats;
    }
    if (typeof m.event !== "string" || m.event === "state") return;
    if (m.event === "close") {
      // The server or the socket ended it: the worker ends itself too; this is for one that
      // cannot (each reconnect makes a new worker, so none may linger).
      this.closed = true;
      this.inputOpen = false;
      this.terminateSoon();
    }
    this.on(m.event, m.detail);
  }

  post(msg) {
    if (!this.worker || this.closed) return false;
    this.worker.postMessage(msg);
    return true;
  }

  /** The worker ends itself after its socket closed; this ends one that cannot. */
  terminateSoon() {
    const w = this.worker;
    setTimeout(() => w && w.terminate(), 2000);
  }

  /** neko's binary input; false when the socket is not open. */
  sendInput(buf) {
    if (!this.inputOpen) return false;
    return this.post({ type: "input", buf });
  }

  paste(text, keysym = null) {
    if (!this.inputOpen) return false;
    return this.post({ type: "paste", text, keysym });
  }

  /** No host arbitration on this transport: nothing to ask for. */
  requestControl() {}

  /** Sound needs the WebRTC path. */
  setAudio() {}

  /** Ends the session; `close` is reported once, at once, with the given code. */
  close(code = 1000, reason = "") {
    if (this.closed) return;
    this.post({ type: "close", code, reason });
    this.terminateSoon();
    this.closed = true;
    this.inputOpen = false;
    this.on("close", { code, reason, opened: this.opened, local: true });
  }
}
