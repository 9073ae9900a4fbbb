import test from "node:test";
import assert from "node:assert/strict";
import { keysymForEvent, keysymForChar, isModifierKeysym } from "../keysym.js";

const k = (key, code = "", location = 0) => keysymForEvent({ key, code, location });

test("Latin-1 characters are their code point, whatever Shift or AltGr made them", () => {
  assert.equal(k("a", "KeyA"), 0x61);
  assert.equal(k("A", "KeyA"), 0x41); // Shift+a
  assert.equal(k("!", "Digit1"), 0x21); // Shift+1 on US
  assert.equal(k("@", "KeyQ"), 0x40); // AltGr+q on German
  assert.equal(k("é", "Digit2"), 0xe9); // French layout
  assert.equal(k("ß", "Minus"), 0xdf);
  assert.equal(k(" ", "Space"), 0x20);
  assert.equal(k("\u00a0", "Space"), 0xa0);
  assert.equal(k("ÿ"), 0xff);
});

test("other Unicode is 0x01000000 + code point", () => {
  assert.equal(k("€", "KeyE"), 0x010020ac); // AltGr+e
  assert.equal(k("ł", "KeyL"), 0x01000142);
  assert.equal(k("я", "KeyZ"), 0x0100044f);
  assert.equal(k("😀"), 0x0101f600); // astral plane: one code point, two UTF-16 units
});

test("named keys use the X keysyms of the protocol reference", () => {
  const table = {
    Enter: 0xff0d, Backspace: 0xff08, Tab: 0xff09, Escape: 0xff1b, Delete: 0xffff, Insert: 0xff63,
    Home: 0xff50, ArrowLeft: 0xff51, ArrowUp: 0xff52, ArrowRight: 0xff53, ArrowDown: 0xff54,
    PageUp: 0xff55, PageDown: 0xff56, End: 0xff57, CapsLock: 0xffe5, NumLock: 0xff7f,
    ContextMenu: 0xff67, PrintScreen: 0xff61, Pause: 0xff13, ScrollLock: 0xff14,
  };
  for (const [key, sym] of Object.entries(table)) assert.equal(k(key), sym, key);
});

test("function keys F1–F24", () => {
  assert.equal(k("F1"), 0xffbe);
  assert.equal(k("F12"), 0xffc9);
  assert.equal(k("F13"), 0xffca);
  assert.equal(k("F24"), 0xffd5);
  assert.equal(k("F0"), null);
});

test("modifiers, left and right", () => {
  assert.equal(k("Shift", "ShiftLeft", 1), 0xffe1);
  assert.equal(k("Shift", "ShiftRight", 2), 0xffe2);
  assert.equal(k("Control", "ControlLeft", 1), 0xffe3);
  assert.equal(k("Control", "ControlRight", 2), 0xffe4);
  assert.equal(k("Alt", "AltLeft", 1), 0xffe9);
  assert.equal(k("Alt", "AltRight", 2), 0xffea);
  assert.equal(k("AltGraph", "AltRight", 2), 0xfe03); // ISO_Level3_Shift
  assert.equal(k("Meta", "MetaLeft", 1), 0xffeb); // Super_L
  assert.equal(k("Meta", "MetaRight", 2), 0xffec); // Super_R
  assert.equal(k("OS", "OSLeft", 1), 0xffeb);
  for (const s of [0xffe1, 0xffe2, 0xffe3, 0xffe4, 0xffe9, 0xffea, 0xffeb, 0xfe03]) assert.ok(isModifierKeysym(s));
  assert.ok(!isModifierKeysym(0x61));
  assert.ok(!isModifierKeysym(0xff0d));
});

test("keypad keys by code and location", () => {
  assert.equal(k("7", "Numpad7", 3), 0xffb7);
  assert.equal(k("0", "Numpad0", 3), 0xffb0);
  assert.equal(k("+", "NumpadAdd", 3), 0xffab);
  assert.equal(k("-", "NumpadSubtract", 3), 0xffad);
  assert.equal(k("*", "NumpadMultiply", 3), 0xffaa);
  assert.equal(k("/", "NumpadDivide", 3), 0xffaf);
  assert.equal(k(".", "NumpadDecimal", 3), 0xffae);
  assert.equal(k(",", "NumpadDecimal", 3), 0xffae); // decimal key on a comma locale
  assert.equal(k("Enter", "NumpadEnter", 3), 0xff8d);
  assert.equal(k("Home", "Numpad7", 3), 0xff95); // NumLock off
  assert.equal(k("ArrowDown", "Numpad2", 3), 0xff99);
  assert.equal(k("Delete", "NumpadDecimal", 3), 0xff9f);
  // the main-block digit and Enter are not keypad keys
  assert.equal(k("7", "Digit7", 0), 0x37);
  assert.equal(k("Enter", "Enter", 0), 0xff0d);
});

test("keys without a keysym: dead keys, IME, unidentified, control characters", () => {
  assert.equal(k("Dead", "BracketLeft"), null);
  assert.equal(k("Process", "KeyA"), null);
  assert.equal(k("Unidentified"), null);
  assert.equal(k(""), null);
  assert.equal(keysymForEvent(null), null);
  assert.equal(keysymForEvent({}), null);
  assert.equal(keysymForChar("\u0007"), null);
  assert.equal(keysymForChar("\u0085"), null);
  assert.equal(keysymForChar("ab"), null);
  assert.equal(keysymForChar(5), null);
  assert.equal(k("SomethingNew"), null);
});
