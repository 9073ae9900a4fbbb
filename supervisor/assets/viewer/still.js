// The still: a JPEG of the desktop (`/api/screenshot`), asked for as early as the page can,
// to show until live video. index.html loads this module `async` on its own, so the request
// goes out while the rest of the page's modules are still loading; main.js imports the same
// instance and shows the result. No imports, on purpose: nothing to wait for.

/** Largest still asked for, in device pixels across. */
const STILL_MAX_WIDTH = 3840;

/**
 * The URL of a JPEG still for a stage `w` CSS pixels wide at device pixel ratio `dpr` (the
 * stage spans the window; the screenshot never scales up, so the width is enough).
 */
export function stillUrl(w, dpr = 1, quality = 75) {
  const d = Number.isFinite(dpr) && dpr > 0 ? dpr : 1;
  const width = Math.max(64, Math.min(STILL_MAX_WIDTH, Math.round((Number(w) || 0) * d)));
  return `/api/screenshot?format=jpeg&quality=${quality}&max_width=${width}`;
}

/**
 * Fetches the still: `{blob}` or `{error}` (no display, an older deskd, a network error).
 * `fetchImpl` for tests.
 */
export async function fetchStill(url, fetchImpl = globalThis.fetch) {
  try {
    const r = await fetchImpl(url, { credentials: "same-origin", cache: "no-store" });
    const type = (r.headers && r.headers.get("content-type")) || "";
    if (!r.ok || !type.startsWith("image/")) return { error: `${r.status} ${type}` };
    return { blob: await r.blob() };
  } catch (err) {
    return { error: String(err && err.message ? err.message : err) };
  }
}

/** The page's still, requested when this module is first evaluated (null outside a page). */
export const earlyStill = typeof window === "undefined" ? null : fetchStill(stillUrl(window.innerWidth, window.devicePixelRatio));
