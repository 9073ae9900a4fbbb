// Geometry of a letterboxed (object-fit: contain) video: where the picture really is inside
// its element, and the mapping between client (CSS pixel) coordinates and desktop pixels.
// The browser places the picture on device pixels, so the box is snapped to 1/devicePixelRatio.

function snap(v, dpr) {
  const d = Number.isFinite(dpr) && dpr > 0 ? dpr : 1;
  return Math.round(v * d) / d;
}

/**
 * The rectangle (relative to the element, CSS pixels) that a `srcW`×`srcH` picture fills in
 * an `elW`×`elH` element with object-fit: contain. Null while either size is unknown.
 */
export function containBox(elW, elH, srcW, srcH, dpr = 1) {
  if (!(elW > 0 && elH > 0 && srcW > 0 && srcH > 0)) return null;
  const scale = Math.min(elW / srcW, elH / srcH);
  const width = snap(srcW * scale, dpr);
  const height = snap(srcH * scale, dpr);
  const x = snap((elW - width) / 2, dpr);
  const y = snap((elH - height) / 2, dpr);
  return { x, y, width, height };
}

/**
 * Client coordinates → desktop pixels.
 * - `rect`: the video element's bounding client rect `{left, top, width, height}`;
 * - `video`: its intrinsic size `{width, height}` (videoWidth/videoHeight), which gives the
 *   aspect ratio of the picture; falls back to `screen` when not known yet;
 * - `screen`: the desktop size from neko (`screen_size`), the coordinate space of MOVE.
 * Returns `{x, y, inside}`; x/y are clamped to the screen so drags that leave the picture
 * pin to its edge.
 */
export function clientToDesktop(clientX, clientY, rect, video, screen, dpr = 1) {
  if (!rect || !screen || !(screen.width > 0 && screen.height > 0)) return null;
  const src = video && video.width > 0 && video.height > 0 ? video : screen;
  const box = containBox(rect.width, rect.height, src.width, src.height, dpr);
  if (!box) return null;
  const fx = (clientX - rect.left - box.x) / box.width;
  const fy = (clientY - rect.top - box.y) / box.height;
  const inside = fx >= 0 && fx < 1 && fy >= 0 && fy < 1;
  const x = Math.min(screen.width - 1, Math.max(0, Math.floor(fx * screen.width)));
  const y = Math.min(screen.height - 1, Math.max(0, Math.floor(fy * screen.height)));
  return { x, y, inside };
}

/**
 * Desktop pixels → position relative to the element (CSS pixels), plus the scale from desktop
 * pixels to CSS pixels: what the cursor overlay needs.
 */
export function desktopToElement(x, y, elW, elH, video, screen, dpr = 1) {
  if (!screen || !(screen.width > 0 && screen.height > 0)) return null;
  const src = video && video.width > 0 && video.height > 0 ? video : screen;
  const box = containBox(elW, elH, src.width, src.height, dpr);
  if (!box) return null;
  const sx = box.width / screen.width;
  const sy = box.height / screen.height;
  return { left: box.x + x * sx, top: box.y + y * sy, scaleX: sx, scaleY: sy };
}
