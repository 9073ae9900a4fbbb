// The still: a JPEG of the desktop (`/api/screenshot`) to show until live video. index.html
// asks for it itself, as an <img srcset> the browser fetches while it parses the page and
// paints the moment it is decoded, in parallel with (and without waiting for) the page's
// modules; the browser picks the width for the window and its device pixel ratio. This module
// says which widths exist (a test keeps index.html in step) and waits for the element; a
// still that failed (deskd not ready yet, a request the browser dropped) is asked for again.

/** The widths index.html offers, in device pixels across. */
export const STILL_WIDTHS = [640, 960, 1280, 1920, 2560, 3840];

/** The URL of a JPEG still at most `width` device pixels across (it never scales up). */
export function stillUrl(width, quality = 75) {
  return `/api/screenshot?format=jpeg&quality=${quality}&max_width=${width}`;
}

/** The width index.html's srcset gives a window `cssWidth` wide at `dpr`: the smallest one at least that wide. */
export function stillWidthFor(cssWidth, dpr = 1) {
  const d = Number.isFinite(dpr) && dpr > 0 ? dpr : 1;
  const want = (Number(cssWidth) || 0) * d;
  return STILL_WIDTHS.find((w) => w >= want) ?? STILL_WIDTHS[STILL_WIDTHS.length - 1];
}

/** index.html's srcset for the still. */
export function stillSrcset() {
  return STILL_WIDTHS.map((w) => `${stillUrl(w)} ${w}w`).join(", ");
}

/**
 * Resolves when the still element `img` has an image (true) or failed (false: no display
 * yet, a deskd without the agent API): at once if it is already settled.
 */
export function stillLoaded(img) {
  if (img.complete) return Promise.resolve(img.naturalWidth > 0);
  return new Promise((resolve) => {
    img.addEventListener("load", () => resolve(img.naturalWidth > 0), { once: true });
    img.addEventListener("error", () => resolve(false), { once: true });
  });
}
