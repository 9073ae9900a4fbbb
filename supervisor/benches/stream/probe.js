// The stream benchmark's probe, injected into every page it opens before the page's own
// scripts (Page.addScriptToEvaluateOnNewDocument). It owns, in `window.__bench`:
// - photon times: every animation frame it samples the decoded picture (the `#screen`
//   element, or before the first picture any large video/canvas/img) into a small canvas and
//   records when the screen centre turns black or white, and when a watched region differs
//   from its baseline; times are `performance.timeOrigin + performance.now()` (wall clock);
// - the first picture (any picture of the white screen) and the first live video (a video
//   frame presented, or a WebCodecs frame decoded, in the page or in deskd's stream worker,
//   showing it), from navigation start;
// - the bytes the page received and sent on its WebSockets and RTCPeerConnections (and on
//   deskd's stream worker's socket, as the viewer counts them).
// The bench sets `window.__benchLive` ("video", "decoder" or "picture") in front of this text.
(() => {
  if (window.top !== window || window.__bench) return;
  const now = () => performance.timeOrigin + performance.now();
  const W = 1280;
  const H = 720;
  const B = (window.__bench = {
    live: window.__benchLive || "picture",
    nav: performance.timeOrigin,
    firstPicture: null,
    firstLive: null,
    firstDecoded: null,
    firstVideoFrame: null,
    wsIn: 0,
    wsOut: 0,
    pcs: [],
    paused: false,
    samples: 0,
    white: null, // the centre's last state: true, false or null (neither)
    lumHist: [], // [time, white] at each change
    region: null, // {x, y, w, h} in desktop pixels
    baseline: null,
    wantBaseline: null,
    changed: false,
    regionHist: [], // [time, changed] at each change
    waiters: [],
    error: null,
    errors: [],
  });
  const note = (what) => {
    if (B.errors.length < 20) B.errors.push(String(what));
  };
  addEventListener("error", (e) => note(e.message || e));
  addEventListener("unhandledrejection", (e) => note(e.reason));

  // ---- bytes
  const size = (d) =>
    typeof d === "string" ? d.length : d instanceof Blob ? d.size : d.byteLength || 0;
  // Constructors are replaced by functions that return the native object with a listener
  // attached (a subclass would change the prototype chain, which noVNC checks).
  const wrap = (Native, after, init = (args) => args) => {
    const Wrapped = function (...args) {
      const obj = new Native(...init(args));
      after(obj);
      return obj;
    };
    Wrapped.prototype = Native.prototype;
    for (const k of Object.getOwnPropertyNames(Native)) {
      if (!(k in Wrapped)) Object.defineProperty(Wrapped, k, Object.getOwnPropertyDescriptor(Native, k));
    }
    return Wrapped;
  };
  const nativeSend = WebSocket.prototype.send;
  WebSocket.prototype.send = function (d) {
    B.wsOut += size(d);
    return nativeSend.call(this, d);
  };
  window.WebSocket = wrap(window.WebSocket, (ws) =>
    ws.addEventListener("message", (e) => {
      B.wsIn += size(e.data);
    }),
  );
  if (window.RTCPeerConnection) {
    window.RTCPeerConnection = wrap(window.RTCPeerConnection, (pc) => B.pcs.push(pc));
  }
  B.bytes = async () => {
    let rtc = 0;
    for (const pc of B.pcs) {
      try {
        const stats = await pc.getStats();
        stats.forEach((r) => {
          if (r.type === "transport") rtc += (r.bytesReceived || 0) + (r.bytesSent || 0);
        });
      } catch (_) {
        // a closed connection has no stats
      }
    }
    // deskd's stream worker has a socket of its own, out of this script's reach.
    const v = window.__deskdViewer;
    const worker = v && typeof v.workerBytes === "function" ? v.workerBytes() : 0;
    return B.wsIn + B.wsOut + rtc + worker;
  };

  // ---- the WebRTC receiver's own account of a video frame's time (Chromium's inbound-rtp
  // stats), as averages per frame in ms: jitter buffer, its target, its minimum, decode,
  // and processing (first packet received -> decoded)
  B.rtcVideo = async () => {
    for (const pc of B.pcs) {
      try {
        const stats = await pc.getStats();
        let out = null;
        stats.forEach((r) => {
          if (r.type !== "inbound-rtp" || r.kind !== "video" || !r.framesDecoded) return;
          const per = (x, n) => (n ? (1000 * (x || 0)) / n : null);
          const emitted = r.jitterBufferEmittedCount;
          out = [
            per(r.jitterBufferDelay, emitted),
            per(r.jitterBufferTargetDelay, emitted),
            per(r.jitterBufferMinimumDelay, emitted),
            per(r.totalDecodeTime, r.framesDecoded),
            per(r.totalProcessingDelay, r.framesDecoded),
          ];
        });
        if (out) return out;
      } catch (_) {
        // a closed connection has no stats
      }
    }
    return null;
  };

  // ---- first decoded WebCodecs frame
  if (window.VideoDecoder) {
    window.VideoDecoder = wrap(
      window.VideoDecoder,
      () => {},
      ([init, ...rest]) => [
        {
          ...init,
          output: (frame) => {
            if (B.firstDecoded === null) B.firstDecoded = now();
            init.output(frame);
          },
        },
        ...rest,
      ],
    );
  }

  // ---- sampling
  const probe = document.createElement("canvas");
  probe.width = W;
  probe.height = 64;
  const g = probe.getContext("2d", { willReadFrequently: true });
  const dims = (el) =>
    el instanceof HTMLVideoElement
      ? [el.videoWidth, el.videoHeight]
      : el instanceof HTMLImageElement
        ? [el.naturalWidth, el.naturalHeight]
        : [el.width, el.height];
  const watchedVideos = new WeakSet();
  const usable = (el) => {
    if (el instanceof HTMLVideoElement && !watchedVideos.has(el) && el.requestVideoFrameCallback) {
      // Before it has a size: the first frame presented is what counts.
      watchedVideos.add(el);
      el.requestVideoFrameCallback(() => {
        if (B.firstVideoFrame === null) B.firstVideoFrame = now();
      });
    }
    const [w, h] = dims(el);
    if (w < 320 || h < 180) return false;
    if (el instanceof HTMLVideoElement && el.readyState < 2) return false;
    if (el instanceof HTMLImageElement && !el.complete) return false;
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) return false;
    const cs = getComputedStyle(el);
    return cs.visibility !== "hidden" && cs.display !== "none" && Number(cs.opacity) > 0;
  };
  // Draws desktop rectangle (x, y, w, h) of `el` to the probe canvas at 1:1 and reads it.
  const grab = (el, x, y, w, h) => {
    const [sw, sh] = dims(el);
    const fx = sw / W;
    const fy = sh / H;
    g.drawImage(el, x * fx, y * fy, w * fx, h * fy, 0, 0, w, h);
    return g.getImageData(0, 0, w, h).data;
  };
  const centreWhite = (el) => {
    const d = grab(el, W / 2 - 8, H / 2 - 8, 16, 16);
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += d[i] + d[i + 1] + d[i + 2];
    const mean = sum / (d.length / 4) / 3;
    return mean > 160 ? true : mean < 96 ? false : null;
  };
  const settle = (kind, t, value) => {
    B.waiters = B.waiters.filter((w) => {
      if (w.kind === kind && w.value === value && t >= w.since) {
        w.resolve(t);
        return false;
      }
      return true;
    });
  };
  // The viewer decodes in its stream worker where it can, out of this script's reach: its own
  // record of the first decoded frame (stamped in the worker) counts as well.
  const viewerDecoded = () => {
    const v = window.__deskdViewer;
    const f = v && v.frames && v.frames[0];
    if (B.firstDecoded === null && f && typeof f.decodedEpochMs === "number") B.firstDecoded = f.decodedEpochMs;
  };
  // WebRTC frames the viewer paints on its canvas (not its <video>): its own stamp of the
  // first one painted.
  const viewerPainted = () => {
    const v = window.__deskdViewer;
    if (B.firstVideoFrame === null && v && v.paintWebRtcFrames && v.firstVideo) B.firstVideoFrame = v.firstVideo.epochMs;
  };
  const live = (t) => {
    if (B.firstLive !== null) return;
    viewerDecoded();
    viewerPainted();
    if (B.live === "picture") B.firstLive = t;
    else if (B.live === "video" && B.firstVideoFrame !== null) B.firstLive = t;
    else if (B.live === "decoder" && B.firstDecoded !== null) B.firstLive = t;
  };
  const sample = () => {
    const t = now();
    B.samples++;
    const screen = document.getElementById("screen");
    let el = screen && usable(screen) ? screen : null;
    if (B.firstPicture === null || B.firstLive === null) {
      // Before the first picture, whatever shows the desktop counts (a still may be an img).
      const all = [...document.querySelectorAll("video, canvas, img")].filter(
        (e) => e !== probe && usable(e),
      );
      const white = all.find((e) => centreWhite(e) === true);
      if (white && B.firstPicture === null) B.firstPicture = t;
      if (!el) el = all.find((e) => e instanceof HTMLCanvasElement) || all[0] || null;
      if (el && centreWhite(el) === true && B.firstPicture !== null) live(t);
    }
    if (!el) return;
    const white = centreWhite(el);
    if (white !== null && white !== B.white) {
      B.white = white;
      B.lumHist.push([t, white]);
      if (B.lumHist.length > 1000) B.lumHist.shift();
      settle("lum", t, white);
    }
    if (B.region) {
      const { x, y, w, h } = B.region;
      const d = grab(el, x, y, w, h);
      if (B.wantBaseline) {
        B.baseline = new Uint8ClampedArray(d);
        B.changed = false;
        B.wantBaseline(t);
        B.wantBaseline = null;
      } else if (B.baseline) {
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          const diff = Math.max(
            Math.abs(d[i] - B.baseline[i]),
            Math.abs(d[i + 1] - B.baseline[i + 1]),
            Math.abs(d[i + 2] - B.baseline[i + 2]),
          );
          if (diff > 80) n++;
        }
        const changed = n >= 4;
        if (changed !== B.changed) {
          B.changed = changed;
          B.regionHist.push([t, changed]);
          if (B.regionHist.length > 1000) B.regionHist.shift();
          settle("region", t, changed);
        }
      }
    }
  };
  const loop = () => {
    if (B.paused) return;
    try {
      sample();
    } catch (e) {
      B.error = String(e);
    }
    requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);

  // ---- the bench's calls
  B.pause = () => {
    B.paused = true;
  };
  B.resume = () => {
    if (!B.paused) return;
    B.paused = false;
    requestAnimationFrame(loop);
  };
  // Resolves with the first sample time >= since at which `kind` ("lum" or "region") took
  // `value`, or null after timeoutMs.
  B.wait = (kind, value, since, timeoutMs) =>
    new Promise((resolve) => {
      const hist = kind === "lum" ? B.lumHist : B.regionHist;
      const hit = hist.find(([t, v]) => t >= since && v === value);
      if (hit) return resolve(hit[0]);
      const w = { kind, value, since, resolve };
      B.waiters.push(w);
      setTimeout(() => {
        B.waiters = B.waiters.filter((x) => x !== w);
        resolve(null);
      }, timeoutMs);
    });
  // Watches desktop rectangle r; resolves once the next sample is its baseline.
  B.watch = (r) =>
    new Promise((resolve) => {
      B.region = r;
      B.regionHist = [];
      B.wantBaseline = resolve;
    });
  B.unwatch = () => {
    B.region = null;
    B.baseline = null;
  };
})();
