// WebRTC's encoded video frames decoded by the page itself (`render=decoder`, the default
// where the browser can): what the worker (rtc-decode-worker.js) does with each frame the
// receiver's RTCRtpScriptTransform hands it, pure and without DOM so that tests drive it.
//
// The transform sees a frame as soon as its packets are in, before the browser's jitter
// buffer; decoding it here with WebCodecs and painting it at once skips that buffer's wait
// and the <video>'s render delay (docs/viewer.md has the figures). Frames are not handed back
// to the browser's own decoder, which then decodes nothing, unless this browser cannot decode
// the codec: then every frame is passed back and the <video> shows them as before.
//
// deskd's neko feed sends a *repeat* (a non-reference P picture with every macroblock
// skipped, about 20 bytes) on each tick the screen did not change. It shows what is already
// shown and leaves the decoder's state as it was, so it is neither decoded nor painted here:
// a still screen costs nothing past the network.

/** A repeat's slices are never longer than this (a patch frame's one macroblock is 384+). */
export const REPEAT_MAX_BYTES = 64;

/** Frames held while the browser says whether it decodes the codec. */
export const PENDING_MAX = 32;

/** Frames queued in the decoder beyond which it has fallen behind: it starts over at a key frame. */
export const QUEUE_MAX = 30;

/** Annex B NAL units of `data` (a Uint8Array), without their start codes. */
export function nalUnits(data) {
  const out = [];
  const n = data.length;
  let start = -1;
  let i = 0;
  while (i + 2 < n) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      if (start >= 0) out.push(data.subarray(start, trimZeros(data, start, i)));
      i += 3;
      start = i;
    } else {
      i += 1;
    }
  }
  if (start >= 0 && start < n) out.push(data.subarray(start, n));
  return out.filter((nal) => nal.length > 0);
}

/** The end of a NAL unit that runs up to the start code at `end` (its leading zero bytes belong to that). */
function trimZeros(data, start, end) {
  let e = end;
  while (e > start && data[e - 1] === 0) e -= 1;
  return e;
}

const hex2 = (b) => b.toString(16).padStart(2, "0");

/**
 * The WebCodecs codec string for frames of `mimeType` ("video/H264", ...), H.264's read from
 * the SPS in `data` (a key frame's Annex B bytes); null when there is none to be had.
 */
export function codecFor(mimeType, data) {
  switch (String(mimeType || "").toLowerCase()) {
    case "video/vp8":
      return "vp8";
    case "video/vp9":
      return "vp09.00.10.08";
    case "video/av1":
      return "av01.0.04M.08";
    case "video/h264": {
      const sps = nalUnits(data).find((nal) => (nal[0] & 0x1f) === 7);
      if (!sps || sps.length < 4) return null;
      return `avc1.${hex2(sps[1])}${hex2(sps[2])}${hex2(sps[3])}`;
    }
    default:
      return null;
  }
}

/**
 * True when `data` is one of the neko feed's repeats: H.264 whose coded slices are all
 * non-reference, non-IDR and together at most REPEAT_MAX_BYTES, with no parameter sets.
 * The encoder's own frames are reference pictures, and a patch frame's slices carry at least
 * one macroblock of raw samples (docs/streaming.md), so neither is taken for one.
 */
export function isRepeat(mimeType, data) {
  if (String(mimeType || "").toLowerCase() !== "video/h264") return false;
  let slices = 0;
  let bytes = 0;
  for (const nal of nalUnits(data)) {
    const type = nal[0] & 0x1f;
    if (type === 5 || type === 7 || type === 8) return false;
    if (type === 1) {
      if ((nal[0] & 0x60) !== 0) return false;
      slices += 1;
      bytes += nal.length;
    } else if (type >= 2 && type <= 4) {
      return false;
    }
  }
  return slices > 0 && bytes <= REPEAT_MAX_BYTES;
}

/**
 * One receiver's frames through a WebCodecs decoder to `draw`:
 * - `draw(videoFrame, meta)`: paint it (`meta` {rtpTimestamp, receivedMs, key}); the
 *   decoder closes the frame after;
 * - `pass(encodedFrame)`: give a frame back to the browser's own decoder (a codec this
 *   browser cannot decode here);
 * - `on(event, detail)`: "config" ({codec}), "unsupported" ({codec, reason}), "need-key"
 *   (the picture waits for a key frame: ask for one), "error" (text);
 * - `VideoDecoderImpl`, `EncodedVideoChunkImpl`, `now` for tests.
 *
 * Frames are `{type: "key"|"delta", data: ArrayBuffer, getMetadata()}` as
 * RTCEncodedVideoFrame has them (`mimeType`, `rtpTimestamp`).
 */
export class FrameDecoder {
  constructor({ draw, pass, on = () => {}, VideoDecoderImpl = globalThis.VideoDecoder, EncodedVideoChunkImpl = globalThis.EncodedVideoChunk, now = () => Date.now() }) {
    Object.assign(this, { draw, pass, on, VideoDecoderImpl, EncodedVideoChunkImpl, now });
    /** "new" (no frame yet), "checking" (asked the browser), "waiting" (for a key frame), "decoding", "passing". */
    this.state = "new";
    this.codec = null;
    this.decoder = null;
    this.pending = [];
    /** What each frame in the decoder came with, by its chunk's timestamp. */
    this.meta = new Map();
    this.keyAsked = false;
    this.stats = { received: 0, repeats: 0, decoded: 0, dropped: 0, passed: 0 };
  }

  /** Takes the receiver's next frame. */
  take(frame) {
    if (this.state === "stopped") return;
    this.stats.received += 1;
    if (this.state === "passing") {
      this.passOn(frame);
      return;
    }
    const meta = frame.getMetadata ? frame.getMetadata() : {};
    const data = new Uint8Array(frame.data);
    if (this.state === "new") {
      const codec = codecFor(meta.mimeType, data);
      if (codec === null) {
        if (frame.type === "key" || !meta.mimeType || !/h264/i.test(meta.mimeType)) {
          this.fallBack(String(meta.mimeType || "no codec"), "not a codec this page decodes", [frame]);
          return;
        }
        // H.264 without its parameter sets yet: wait for the key frame that has them.
        this.stats.dropped += 1;
        this.askKey();
        return;
      }
      this.check(codec, frame);
      return;
    }
    if (this.state === "checking") {
      if (this.pending.length >= PENDING_MAX) {
        this.fallBack(this.codec, "the browser did not answer whether it decodes it", [...this.pending, frame]);
        return;
      }
      this.pending.push(frame);
      return;
    }
    this.decode(frame, meta, data);
  }

  /** Asks the browser whether it decodes `codec`, holding frames meanwhile. */
  check(codec, frame) {
    this.state = "checking";
    this.codec = codec;
    this.pending = [frame];
    const config = { codec, optimizeForLatency: true };
    const asked = typeof this.VideoDecoderImpl === "function" && typeof this.VideoDecoderImpl.isConfigSupported === "function"
      ? this.VideoDecoderImpl.isConfigSupported(config)
      : Promise.resolve({ supported: false });
    Promise.resolve(asked).then(
      (r) => this.checked(config, Boolean(r && r.supported), "this browser does not decode it"),
      (e) => this.checked(config, false, String(e && e.message ? e.message : e)),
    );
  }

  checked(config, supported, reason) {
    if (this.state !== "checking") return;
    const held = this.pending;
    this.pending = [];
    if (!supported) {
      this.fallBack(config.codec, reason, held);
      return;
    }
    try {
      this.open(config);
    } catch (e) {
      this.fallBack(config.codec, String(e && e.message ? e.message : e), held);
      return;
    }
    this.on("config", { codec: config.codec });
    for (const f of held) {
      if (this.state === "passing") this.passOn(f);
      else this.decode(f, f.getMetadata ? f.getMetadata() : {}, new Uint8Array(f.data));
    }
  }

  open(config) {
    this.config = config;
    this.decoder = new this.VideoDecoderImpl({
      output: (vf) => this.output(vf),
      error: (e) => this.failed(e),
    });
    this.decoder.configure(config);
    this.state = "waiting";
  }

  decode(frame, meta, data) {
    if (this.state === "waiting") {
      if (frame.type !== "key") {
        this.stats.dropped += 1;
        this.askKey();
        return;
      }
      this.state = "decoding";
      this.keyAsked = false;
    } else if (frame.type !== "key" && isRepeat(meta.mimeType, data)) {
      this.stats.repeats += 1;
      return;
    }
    if (this.decoder.decodeQueueSize > QUEUE_MAX) {
      this.restart("the decoder fell behind");
      this.stats.dropped += 1;
      return;
    }
    const timestamp = Number(meta.rtpTimestamp) || 0;
    this.meta.set(timestamp, { rtpTimestamp: meta.rtpTimestamp, receivedMs: this.now(), key: frame.type === "key" });
    if (this.meta.size > 2 * QUEUE_MAX) this.meta.delete(this.meta.keys().next().value);
    try {
      this.decoder.decode(new this.EncodedVideoChunkImpl({ type: frame.type, timestamp, data: frame.data }));
    } catch (e) {
      this.restart(`decoding: ${e && e.message ? e.message : e}`);
    }
  }

  output(vf) {
    const meta = this.meta.get(vf.timestamp) || { rtpTimestamp: vf.timestamp, receivedMs: null, key: false };
    this.meta.delete(vf.timestamp);
    this.stats.decoded += 1;
    try {
      this.draw(vf, meta);
    } catch (e) {
      this.on("error", `painting a frame: ${e && e.message ? e.message : e}`);
    } finally {
      vf.close();
    }
  }

  failed(e) {
    this.restart(`decoder: ${e && e.message ? e.message : e}`);
  }

  /** A fresh decoder that waits for the next key frame (and asks for one). */
  restart(why) {
    if (this.state === "passing" || this.state === "stopped") return;
    this.on("error", why);
    if (this.decoder && this.decoder.state !== "closed") {
      try {
        this.decoder.close();
      } catch {
        // closed already
      }
    }
    this.meta.clear();
    try {
      this.open(this.config);
    } catch (e) {
      this.fallBack(this.codec, String(e && e.message ? e.message : e), []);
      return;
    }
    this.askKey();
  }

  askKey() {
    if (this.keyAsked) return;
    this.keyAsked = true;
    this.on("need-key");
  }

  /** From now on every frame goes back to the browser's decoder, `held` first. */
  fallBack(codec, reason, held) {
    this.state = "passing";
    this.on("unsupported", { codec, reason });
    for (const f of held) this.passOn(f);
  }

  passOn(frame) {
    this.stats.passed += 1;
    this.pass(frame);
  }

  stop() {
    this.state = "stopped";
    if (this.decoder && this.decoder.state !== "closed") {
      try {
        this.decoder.close();
      } catch {
        // closed already
      }
    }
  }
}
