// KeyboardEvent → X11 keysym. Characters are taken from `event.key`, so whatever the local
// layout produced (Shift, AltGr, dead keys) arrives as that character: Latin-1 is its code
// point, other Unicode is 0x01000000 + code point. Named keys use the table below; left/right
// modifiers and the keypad are told apart with `event.code`.

/** Named `event.key` values → keysym. */
export const NAMED_KEYS = Object.freeze({
  Backspace: 0xff08,
  Tab: 0xff09,
  Clear: 0xff0b,
  Enter: 0xff0d,
  Pause: 0xff13,
  ScrollLock: 0xff14,
  Escape: 0xff1b,
  Compose: 0xff20,
  Convert: 0xff21,
  NonConvert: 0xff22,
  KanaMode: 0xff2d,
  Home: 0xff50,
  ArrowLeft: 0xff51,
  ArrowUp: 0xff52,
  ArrowRight: 0xff53,
  ArrowDown: 0xff54,
  PageUp: 0xff55,
  PageDown: 0xff56,
  End: 0xff57,
  Select: 0xff60,
  PrintScreen: 0xff61,
  Execute: 0xff62,
  Insert: 0xff63,
  Undo: 0xff65,
  Redo: 0xff66,
  ContextMenu: 0xff67,
  Find: 0xff68,
  Cancel: 0xff69,
  Help: 0xff6a,
  NumLock: 0xff7f,
  Shift: 0xffe1,
  Control: 0xffe3,
  CapsLock: 0xffe5,
  Meta: 0xffeb, // Super_L: what Linux desktops bind the Windows/Command key to
  OS: 0xffeb,
  Super: 0xffeb,
  Alt: 0xffe9,
  Hyper: 0xffed,
  AltGraph: 0xfe03, // ISO_Level3_Shift
  Delete: 0xffff,
  // XF86 media keys
  AudioVolumeDown: 0x1008ff11,
  AudioVolumeMute: 0x1008ff12,
  AudioVolumeUp: 0x1008ff13,
  MediaPlayPause: 0x1008ff14,
  MediaStop: 0x1008ff15,
  MediaTrackPrevious: 0x1008ff16,
  MediaTrackNext: 0x1008ff17,
  BrowserBack: 0x1008ff26,
  BrowserForward: 0x1008ff27,
  BrowserRefresh: 0x1008ff29,
});

/** Right-hand modifiers, by `event.code`. */
const RIGHT_MODIFIERS = Object.freeze({
  ShiftRight: 0xffe2,
  ControlRight: 0xffe4,
  AltRight: 0xffea,
  MetaRight: 0xffec,
  OSRight: 0xffec,
});

/** Keypad keys by `event.code` when the key is a character (NumLock on). */
const KEYPAD_CHARS = Object.freeze({
  NumpadMultiply: 0xffaa,
  NumpadAdd: 0xffab,
  NumpadComma: 0xffac,
  NumpadSubtract: 0xffad,
  NumpadDecimal: 0xffae,
  NumpadDivide: 0xffaf,
  NumpadEqual: 0xffbd,
});

/** Keypad navigation keys (NumLock off), by `event.key`. */
const KEYPAD_NAMED = Object.freeze({
  Enter: 0xff8d,
  Home: 0xff95,
  ArrowLeft: 0xff96,
  ArrowUp: 0xff97,
  ArrowRight: 0xff98,
  ArrowDown: 0xff99,
  PageUp: 0xff9a,
  PageDown: 0xff9b,
  End: 0xff9c,
  Clear: 0xff9d,
  Insert: 0xff9e,
  Delete: 0xff9f,
});

const DOM_KEY_LOCATION_NUMPAD = 3;

/** Keysym of one Unicode character (a one-code-point string), or null. */
export function keysymForChar(ch) {
  if (typeof ch !== "string") return null;
  const chars = [...ch];
  if (chars.length !== 1) return null;
  const cp = chars[0].codePointAt(0);
  if (cp === undefined) return null;
  if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff)) return cp;
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return null; // control characters
  return 0x01000000 + cp;
}

/** Function keys F1–F35. */
function functionKey(key) {
  const m = /^F([1-9]|[12][0-9]|3[0-5])$/.exec(key);
  return m ? 0xffbe + Number(m[1]) - 1 : null;
}

/**
 * The keysym for a KeyboardEvent-like `{key, code, location}`, or null when the event carries
 * no key to send (dead keys, IME "Process", "Unidentified").
 */
export function keysymForEvent(ev) {
  const key = ev && typeof ev.key === "string" ? ev.key : "";
  const code = ev && typeof ev.code === "string" ? ev.code : "";
  if (key === "" || key === "Dead" || key === "Process" || key === "Unidentified") return null;

  if (code in RIGHT_MODIFIERS && (key === "Shift" || key === "Control" || key === "Alt" || key === "Meta" || key === "OS")) {
    return RIGHT_MODIFIERS[code];
  }

  const numpad = (ev && ev.location === DOM_KEY_LOCATION_NUMPAD) || code.startsWith("Numpad");
  if (numpad) {
    if (/^[0-9]$/.test(key)) return 0xffb0 + Number(key);
    if (code in KEYPAD_CHARS && [...key].length === 1) return KEYPAD_CHARS[code];
    if (key in KEYPAD_NAMED) return KEYPAD_NAMED[key];
  }

  if (key in NAMED_KEYS) return NAMED_KEYS[key];
  const fn = functionKey(key);
  if (fn !== null) return fn;
  return keysymForChar(key);
}

/** True for keysyms of modifier keys (Shift … Hyper, ISO_Level3_Shift). */
export function isModifierKeysym(keysym) {
  return (keysym >= 0xffe1 && keysym <= 0xffee) || keysym === 0xfe03;
}
