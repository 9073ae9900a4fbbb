// WebRTC's picture decoded and painted by the page itself (`render=decoder`, the default where
// the browser can): the video receiver gets an RTCRtpScriptTransform whose worker
// (rtc-decode-worker.js) decodes each frame with WebCodecs the moment it arrives and paints it
// on the canvas, skipping the browser's jitter buffer and the <video>'s render delay, and the
// neko feed's repeats (encoded-frames.js says why). The <video> still plays the stream's sound.
// If the worker cannot decode the codec it hands the frames back and says so ("fallback"):
// the <video> shows them.

/** Whether this browser lets a page decode a WebRTC receiver's frames in a worker. */
export function canDecodeRtc(g = globalThis) {
  return (
    typeof g.RTCRtpScriptTransform === "function" &&
    typeof g.VideoDecoder === "function" &&
    typeof g.Worker === "function" &&
    typeof g.HTMLCanvasElement === "function" &&
    typeof g.HTMLCanvasElement.prototype.transferControlToOffscreen === "function"
  );
}

export class RtcDecoder {
  /**
   * - `canvas`: a canvas never drawn on (its control goes to the worker);
   * - `WorkerImpl`, `TransformImpl` for tests.
   * The worker starts at once, while signaling runs: loading its modules when the track
   * comes would hold up the first picture.
   */
  constructor({ canvas, WorkerImpl = globalThis.Worker, TransformImpl = globalThis.RTCRtpScriptTransform, workerUrl = new URL("./rtc-decode-worker.js", import.meta.url) }) {
    Object.assign(this, { canvas, WorkerImpl, TransformImpl, workerUrl });
    this.worker = null;
    this.spawnError = null;
    try {
      this.spawn();
    } catch (e) {
      this.spawnError = e;
    }
    this.stopped = false;
    this.handlers = {};
    /** Frames painted, and the worker's last counts. */
    this.painted = 0;
    this.stats = null;
    this.size = null;
  }

  /**
   * Decodes `receiver`'s frames from now on (in place of an earlier receiver's). `handlers`:
   * `painted({width, height})` for the first frame and each change of size, `frame(detail)`
   * for every frame painted, `needKey()`, `fallback({codec, reason})`, `error(text)`.
   * False (and nothing set up) when the receiver cannot take a transform.
   */
  start({ receiver }, handlers = {}) {
    if (this.stopped) return false;
    this.handlers = handlers;
    if (!receiver || !("transform" in receiver)) {
      this.emit("error", "frame decoder: the video receiver takes no transform");
      return false;
    }
    try {
      if (!this.worker) throw this.spawnError || new Error("no worker");
      receiver.transform = new this.TransformImpl(this.worker, { side: "receiver" });
    } catch (e) {
      this.emit("error", `frame decoder: ${e && e.message ? e.message : e}`);
      return false;
    }
    return true;
  }

  spawn() {
    const worker = new this.WorkerImpl(this.workerUrl, { type: "module", name: "deskd-rtc-decoder" });
    const offscreen = this.canvas.transferControlToOffscreen();
    worker.postMessage({ type: "canvas", canvas: offscreen }, [offscreen]);
    worker.onmessage = (e) => this.message(e.data);
    worker.onerror = (e) => this.emit("error", `frame decoder worker: ${e && e.message ? e.message : "failed"}`);
    this.worker = worker;
  }

  message(m) {
    if (!m || typeof m !== "object" || this.stopped) return;
    const d = m.detail;
    switch (m.event) {
      case "painted": {
        this.painted += 1;
        const resized = !this.size || this.size.width !== d.width || this.size.height !== d.height;
        if (resized) {
          this.size = { width: d.width, height: d.height };
          this.emit("painted", { ...this.size });
        }
        this.emit("frame", d);
        break;
      }
      case "need-key":
        this.emit("needKey");
        break;
      case "unsupported":
        this.emit("fallback", d);
        break;
      case "error":
        this.emit("error", `frame decoder: ${d}`);
        break;
      case "stats":
        this.stats = d;
        break;
      default:
        break;
    }
  }

  emit(name, detail) {
    const h = this.handlers[name];
    if (typeof h === "function") h(detail);
  }

  /** Frames decoded and painted so far. */
  get decoded() {
    return this.painted;
  }

  stop() {
    this.stopped = true;
    if (this.worker) {
      this.worker.postMessage({ type: "stop" });
      this.worker.terminate();
    }
    this.worker = null;
  }
}
