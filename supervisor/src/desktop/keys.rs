//! Key names to X keysyms: xdotool-style names (`Return`, `ctrl`, `Page_Up`, `F13`, `comma`,
//! `a`) and combos (`ctrl+shift+t`), and characters to keysyms for typing. Pure: no X here.

/// An X keysym (the 29-bit symbol, not a keycode).
pub type Keysym = u32;

/// Offset of the Unicode keysym range: keysym = `UNICODE_OFFSET + code point`.
pub const UNICODE_OFFSET: Keysym = 0x0100_0000;

pub const XK_RETURN: Keysym = 0xff0d;
pub const XK_TAB: Keysym = 0xff09;
pub const XK_SHIFT_L: Keysym = 0xffe1;

/// Names matched case-insensitively (underscores and dashes optional), with xdotool's and
/// common agent spellings as aliases.
const NAMED: &[(&str, Keysym)] = &[
    // modifiers
    ("shift", 0xffe1),
    ("shift_l", 0xffe1),
    ("shift_r", 0xffe2),
    ("ctrl", 0xffe3),
    ("control", 0xffe3),
    ("control_l", 0xffe3),
    ("ctrl_l", 0xffe3),
    ("control_r", 0xffe4),
    ("ctrl_r", 0xffe4),
    ("alt", 0xffe9),
    ("alt_l", 0xffe9),
    ("alt_r", 0xffea),
    ("altgr", 0xfe03),
    ("iso_level3_shift", 0xfe03),
    ("meta", 0xffe7),
    ("meta_l", 0xffe7),
    ("meta_r", 0xffe8),
    ("super", 0xffeb),
    ("super_l", 0xffeb),
    ("super_r", 0xffec),
    ("win", 0xffeb),
    ("cmd", 0xffeb),
    ("hyper", 0xffed),
    ("hyper_l", 0xffed),
    ("caps_lock", 0xffe5),
    ("capslock", 0xffe5),
    ("num_lock", 0xff7f),
    ("numlock", 0xff7f),
    ("scroll_lock", 0xff14),
    // editing and navigation
    ("return", 0xff0d),
    ("enter", 0xff0d),
    ("tab", 0xff09),
    ("iso_left_tab", 0xfe20),
    ("escape", 0xff1b),
    ("esc", 0xff1b),
    ("backspace", 0xff08),
    ("delete", 0xffff),
    ("del", 0xffff),
    ("insert", 0xff63),
    ("ins", 0xff63),
    ("home", 0xff50),
    ("end", 0xff57),
    ("page_up", 0xff55),
    ("pageup", 0xff55),
    ("pgup", 0xff55),
    ("prior", 0xff55),
    ("page_down", 0xff56),
    ("pagedown", 0xff56),
    ("pgdn", 0xff56),
    ("next", 0xff56),
    ("left", 0xff51),
    ("up", 0xff52),
    ("right", 0xff53),
    ("down", 0xff54),
    ("print", 0xff61),
    ("printscreen", 0xff61),
    ("pause", 0xff13),
    ("break", 0xff6b),
    ("menu", 0xff67),
    ("sys_req", 0xff15),
    ("linefeed", 0xff0a),
    ("clear", 0xff0b),
    // keypad
    ("kp_enter", 0xff8d),
    ("kp_add", 0xffab),
    ("kp_subtract", 0xffad),
    ("kp_multiply", 0xffaa),
    ("kp_divide", 0xffaf),
    ("kp_decimal", 0xffae),
    ("kp_separator", 0xffac),
    ("kp_equal", 0xffbd),
    ("kp_home", 0xff95),
    ("kp_left", 0xff96),
    ("kp_up", 0xff97),
    ("kp_right", 0xff98),
    ("kp_down", 0xff99),
    ("kp_page_up", 0xff9a),
    ("kp_page_down", 0xff9b),
    ("kp_end", 0xff9c),
    ("kp_insert", 0xff9e),
    ("kp_delete", 0xff9f),
    // punctuation by name (X keysym names)
    ("space", 0x20),
    ("exclam", 0x21),
    ("quotedbl", 0x22),
    ("numbersign", 0x23),
    ("dollar", 0x24),
    ("percent", 0x25),
    ("ampersand", 0x26),
    ("apostrophe", 0x27),
    ("quoteright", 0x27),
    ("parenleft", 0x28),
    ("parenright", 0x29),
    ("asterisk", 0x2a),
    ("plus", 0x2b),
    ("comma", 0x2c),
    ("minus", 0x2d),
    ("period", 0x2e),
    ("slash", 0x2f),
    ("colon", 0x3a),
    ("semicolon", 0x3b),
    ("less", 0x3c),
    ("equal", 0x3d),
    ("greater", 0x3e),
    ("question", 0x3f),
    ("at", 0x40),
    ("bracketleft", 0x5b),
    ("backslash", 0x5c),
    ("bracketright", 0x5d),
    ("asciicircum", 0x5e),
    ("underscore", 0x5f),
    ("grave", 0x60),
    ("quoteleft", 0x60),
    ("braceleft", 0x7b),
    ("bar", 0x7c),
    ("braceright", 0x7d),
    ("asciitilde", 0x7e),
    // media and browser keys
    ("xf86audiomute", 0x1008ff12),
    ("xf86audiolowervolume", 0x1008ff11),
    ("xf86audioraisevolume", 0x1008ff13),
    ("xf86audioplay", 0x1008ff14),
    ("xf86audiostop", 0x1008ff15),
    ("xf86audioprev", 0x1008ff16),
    ("xf86audionext", 0x1008ff17),
    ("xf86back", 0x1008ff26),
    ("xf86forward", 0x1008ff27),
    ("xf86reload", 0x1008ff73),
    ("xf86homepage", 0x1008ff18),
    ("xf86search", 0x1008ff1b),
];

/// Normalises a multi-character key name for table lookup: lower case, `-` as `_`.
fn normalise(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "_")
}

/// The keysym for one key name, or `None` if the name is unknown.
///
/// Accepts: a single character (`a`, `A`, `7`, `ö`, `;`), a name from the table above,
/// `F1`..`F35`, `KP_0`..`KP_9`, and raw keysyms as `0x...` hex.
pub fn keysym_from_name(name: &str) -> Option<Keysym> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.clone().next()) {
        return keysym_from_char(c);
    }
    let lower = normalise(name);
    if let Some(rest) = lower.strip_prefix("0x") {
        return u32::from_str_radix(rest, 16)
            .ok()
            .filter(|k| *k > 0 && *k <= 0x1fff_ffff);
    }
    if let Some(n) = lower.strip_prefix('f').and_then(|n| n.parse::<u32>().ok()) {
        return (1..=35).contains(&n).then(|| 0xffbe + n - 1);
    }
    if let Some(n) = lower
        .strip_prefix("kp_")
        .and_then(|n| n.parse::<u32>().ok())
    {
        return (n <= 9).then_some(0xffb0 + n);
    }
    let squashed = lower.replace('_', "");
    NAMED
        .iter()
        .find(|(n, _)| *n == lower || n.replace('_', "") == squashed)
        .map(|(_, k)| *k)
}

/// The keysym that types `c`: `\n` is Return, `\t` is Tab, Latin-1 maps to itself and
/// everything else to the Unicode keysym range. Other control characters have no keysym.
pub fn keysym_from_char(c: char) -> Option<Keysym> {
    let cp = c as u32;
    match c {
        '\n' => Some(XK_RETURN),
        '\t' => Some(XK_TAB),
        _ if c.is_control() => None,
        _ if (0x20..=0x7e).contains(&cp) || (0xa0..=0xff).contains(&cp) => Some(cp),
        _ => Some(UNICODE_OFFSET + cp),
    }
}

/// The character a keysym types, if it is a character (Latin-1 or Unicode keysyms): the
/// inverse of [`keysym_from_char`], used by tests and for diagnostics.
pub fn char_from_keysym(keysym: Keysym) -> Option<char> {
    match keysym {
        XK_RETURN => Some('\n'),
        XK_TAB => Some('\t'),
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(keysym),
        k if (UNICODE_OFFSET + 0x100..=UNICODE_OFFSET + 0x10ffff).contains(&k) => {
            char::from_u32(k - UNICODE_OFFSET)
        }
        _ => None,
    }
}

/// Parses one combo like `ctrl+shift+t` into keysyms, pressed in order and released in
/// reverse. A literal plus is `plus` (or `+` alone).
pub fn parse_combo(combo: &str) -> Result<Vec<Keysym>, String> {
    if combo == "+" {
        return Ok(vec![0x2b]);
    }
    let mut out = Vec::new();
    for part in combo.split('+') {
        if part.is_empty() {
            return Err(format!("empty key name in `{combo}`"));
        }
        match keysym_from_name(part) {
            Some(k) => out.push(k),
            None => return Err(format!("unknown key name `{part}`")),
        }
    }
    Ok(out)
}

/// Parses a `keys` field: one or more combos separated by whitespace (`ctrl+a Delete`), as
/// `xdotool key` takes them.
pub fn parse_keys(keys: &str) -> Result<Vec<Vec<Keysym>>, String> {
    let combos = keys
        .split_whitespace()
        .map(parse_combo)
        .collect::<Result<Vec<_>, _>>()?;
    if combos.is_empty() {
        return Err("no keys given".to_string());
    }
    Ok(combos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        assert_eq!(keysym_from_name("Return"), Some(0xff0d));
        assert_eq!(keysym_from_name("enter"), Some(0xff0d));
        assert_eq!(keysym_from_name("Page_Up"), Some(0xff55));
        assert_eq!(keysym_from_name("pageup"), Some(0xff55));
        assert_eq!(keysym_from_name("F1"), Some(0xffbe));
        assert_eq!(keysym_from_name("F24"), Some(0xffd5));
        assert_eq!(keysym_from_name("F36"), None);
        assert_eq!(keysym_from_name("KP_5"), Some(0xffb5));
        assert_eq!(keysym_from_name("a"), Some(0x61));
        assert_eq!(keysym_from_name("A"), Some(0x41));
        assert_eq!(keysym_from_name("comma"), Some(0x2c));
        assert_eq!(keysym_from_name("super"), Some(0xffeb));
        assert_eq!(keysym_from_name("0xff0d"), Some(0xff0d));
        assert_eq!(keysym_from_name("nosuchkey"), None);
        assert_eq!(keysym_from_name("0xzz"), None);
    }

    #[test]
    fn combos() {
        assert_eq!(parse_combo("ctrl+shift+t"), Ok(vec![0xffe3, 0xffe1, 0x74]));
        assert_eq!(parse_combo("+"), Ok(vec![0x2b]));
        assert!(parse_combo("ctrl++").is_err());
        assert!(parse_combo("ctrl+bogus").is_err());
        assert_eq!(parse_keys("ctrl+a Delete").map(|c| c.len()), Ok(2));
        assert!(parse_keys("  ").is_err());
    }

    #[test]
    fn characters_round_trip() {
        for c in "héllo wörld ✓ 日本\n\t~".chars() {
            let k = keysym_from_char(c);
            assert_eq!(k.and_then(char_from_keysym), Some(c), "{c:?}");
        }
        assert_eq!(keysym_from_char('\u{7}'), None);
    }
}
