//! The `POST /api/input` body: JSON actions parsed and validated as a whole against the
//! screen size before anything reaches X. Pure: no X here, so every rejection is testable.

use std::time::Duration;

use serde::Deserialize;

use super::keys::{self, Keysym};

/// Most actions in one request.
pub const MAX_ACTIONS: usize = 1000;
/// Longest single `wait`.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Longest total time one request may take with its waits and typing delays.
pub const MAX_TOTAL: Duration = Duration::from_secs(120);
/// Most characters in one `type` action.
pub const MAX_TEXT_CHARS: usize = 100_000;
/// Largest per-character delay a `type` action may ask for.
pub const MAX_TYPE_DELAY: Duration = Duration::from_secs(1);
/// Most scroll clicks per axis in one `scroll`.
pub const MAX_SCROLL: i64 = 100;

/// A mouse button by X number (1 left, 2 middle, 3 right, 4-7 wheel, 8 back, 9 forward).
pub type Button = u8;

/// A point on the screen, validated to lie inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub x: i16,
    pub y: i16,
}

/// Whether a key action taps (press then release), only presses or only releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    Tap,
    Down,
    Up,
}

/// One validated action, ready to be sent to X.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Move(Point),
    Click {
        at: Option<Point>,
        button: Button,
        count: u8,
    },
    Button {
        at: Option<Point>,
        button: Button,
        down: bool,
    },
    Drag {
        from: Point,
        to: Point,
        button: Button,
    },
    Scroll {
        at: Option<Point>,
        dx: i32,
        dy: i32,
    },
    Key {
        combos: Vec<Vec<Keysym>>,
        mode: KeyMode,
    },
    Type {
        text: String,
        delay: Duration,
    },
    Wait(Duration),
}

impl Action {
    /// How long this action takes at least (waits and typing delays).
    fn duration(&self) -> Duration {
        match self {
            Action::Wait(d) => *d,
            Action::Type { text, delay } => {
                delay.saturating_mul(u32::try_from(text.chars().count()).unwrap_or(u32::MAX))
            }
            _ => Duration::ZERO,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawButton {
    Number(u64),
    Name(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPoint {
    Pair([i64; 2]),
    Object { x: i64, y: i64 },
}

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum RawAction {
    Move {
        x: i64,
        y: i64,
    },
    Click {
        x: Option<i64>,
        y: Option<i64>,
        button: Option<RawButton>,
        count: Option<u64>,
    },
    Down {
        x: Option<i64>,
        y: Option<i64>,
        button: Option<RawButton>,
    },
    Up {
        x: Option<i64>,
        y: Option<i64>,
        button: Option<RawButton>,
    },
    Drag {
        from: RawPoint,
        to: RawPoint,
        button: Option<RawButton>,
    },
    Scroll {
        x: Option<i64>,
        y: Option<i64>,
        dx: Option<i64>,
        dy: Option<i64>,
    },
    Key {
        keys: String,
    },
    KeyDown {
        keys: String,
    },
    KeyUp {
        keys: String,
    },
    Type {
        text: String,
        delay_ms: Option<u64>,
    },
    Wait {
        ms: u64,
    },
}

/// Why a body was rejected; nothing was sent to X.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// Not JSON, not an object or list, unknown action or field, wrong type (400).
    #[error("{0}")]
    Malformed(String),
    /// Well-formed but not doable: outside the screen, unknown key, out of bounds (422).
    #[error("{0}")]
    Invalid(String),
}

/// Parses and validates a whole request body for a `width`×`height` screen.
/// `type_delay` is the configured default delay between typed characters.
pub fn parse(
    body: &[u8],
    width: u16,
    height: u16,
    type_delay: Duration,
) -> Result<Vec<Action>, ActionError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ActionError::Malformed(format!("body is not valid JSON: {e}")))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        obj @ serde_json::Value::Object(_) => vec![obj],
        _ => {
            return Err(ActionError::Malformed(
                "body must be an action object or a list of them".to_string(),
            ))
        }
    };
    if items.is_empty() {
        return Err(ActionError::Invalid("no actions given".to_string()));
    }
    if items.len() > MAX_ACTIONS {
        return Err(ActionError::Invalid(format!(
            "{} actions given; at most {MAX_ACTIONS} per request",
            items.len()
        )));
    }
    let screen = Screen { width, height };
    let mut actions = Vec::with_capacity(items.len());
    let mut total = Duration::ZERO;
    for (index, item) in items.into_iter().enumerate() {
        let name = item
            .get("action")
            .and_then(|a| a.as_str())
            .unwrap_or("?")
            .to_string();
        let raw: RawAction = serde_json::from_value(item)
            .map_err(|e| ActionError::Malformed(format!("action {index} ({name}): {e}")))?;
        let action = screen
            .validate(raw, type_delay)
            .map_err(|e| ActionError::Invalid(format!("action {index} ({name}): {e}")))?;
        total = total.saturating_add(action.duration());
        actions.push(action);
    }
    if total > MAX_TOTAL {
        return Err(ActionError::Invalid(format!(
            "the actions would take {}s with their waits and typing delays; at most {}s per request",
            total.as_secs(),
            MAX_TOTAL.as_secs()
        )));
    }
    Ok(actions)
}

struct Screen {
    width: u16,
    height: u16,
}

impl Screen {
    fn point(&self, field: &str, x: i64, y: i64) -> Result<Point, String> {
        if x < 0 || x >= i64::from(self.width) || y < 0 || y >= i64::from(self.height) {
            return Err(format!(
                "`{field}` ({x}, {y}) is outside the {}x{} screen",
                self.width, self.height
            ));
        }
        // Both fit in i16: the screen is at most 65535 wide but X coordinates are i16, and
        // X screens are never wider than 32767.
        let x = i16::try_from(x).map_err(|_| format!("`{field}` x={x} is too large"))?;
        let y = i16::try_from(y).map_err(|_| format!("`{field}` y={y} is too large"))?;
        Ok(Point { x, y })
    }

    fn optional_point(&self, x: Option<i64>, y: Option<i64>) -> Result<Option<Point>, String> {
        match (x, y) {
            (Some(x), Some(y)) => self.point("x,y", x, y).map(Some),
            (None, None) => Ok(None),
            _ => Err("give both `x` and `y` or neither".to_string()),
        }
    }

    fn raw_point(&self, field: &str, p: RawPoint) -> Result<Point, String> {
        match p {
            RawPoint::Pair([x, y]) | RawPoint::Object { x, y } => self.point(field, x, y),
        }
    }

    fn validate(&self, raw: RawAction, type_delay: Duration) -> Result<Action, String> {
        Ok(match raw {
            RawAction::Move { x, y } => Action::Move(self.point("x,y", x, y)?),
            RawAction::Click {
                x,
                y,
                button,
                count,
            } => {
                let count = count.unwrap_or(1);
                if !(1..=3).contains(&count) {
                    return Err(format!("`count` must be 1, 2 or 3, not {count}"));
                }
                Action::Click {
                    at: self.optional_point(x, y)?,
                    button: button_number(button)?,
                    count: count as u8,
                }
            }
            RawAction::Down { x, y, button } => Action::Button {
                at: self.optional_point(x, y)?,
                button: button_number(button)?,
                down: true,
            },
            RawAction::Up { x, y, button } => Action::Button {
                at: self.optional_point(x, y)?,
                button: button_number(button)?,
                down: false,
            },
            RawAction::Drag { from, to, button } => Action::Drag {
                from: self.raw_point("from", from)?,
                to: self.raw_point("to", to)?,
                button: button_number(button)?,
            },
            RawAction::Scroll { x, y, dx, dy } => {
                let (dx, dy) = (dx.unwrap_or(0), dy.unwrap_or(0));
                for (field, v) in [("dx", dx), ("dy", dy)] {
                    if v.unsigned_abs() > MAX_SCROLL.unsigned_abs() {
                        return Err(format!("`{field}` {v} is beyond ±{MAX_SCROLL}"));
                    }
                }
                if dx == 0 && dy == 0 {
                    return Err("give `dx` and/or `dy` (wheel clicks, down/right positive)".into());
                }
                Action::Scroll {
                    at: self.optional_point(x, y)?,
                    dx: dx as i32,
                    dy: dy as i32,
                }
            }
            RawAction::Key { keys } => key_action(&keys, KeyMode::Tap)?,
            RawAction::KeyDown { keys } => key_action(&keys, KeyMode::Down)?,
            RawAction::KeyUp { keys } => key_action(&keys, KeyMode::Up)?,
            RawAction::Type { text, delay_ms } => {
                let count = text.chars().count();
                if count > MAX_TEXT_CHARS {
                    return Err(format!(
                        "`text` has {count} characters; at most {MAX_TEXT_CHARS}"
                    ));
                }
                if let Some((i, c)) = text
                    .chars()
                    .enumerate()
                    .find(|(_, c)| *c != '\r' && keys::keysym_from_char(*c).is_none())
                {
                    return Err(format!(
                        "`text` character {i} (U+{:04X}) is a control character that cannot be typed",
                        c as u32
                    ));
                }
                let delay = match delay_ms {
                    Some(ms) => Duration::from_millis(ms),
                    None => type_delay,
                };
                if delay > MAX_TYPE_DELAY {
                    return Err(format!(
                        "`delay_ms` {} is beyond {} ms",
                        delay.as_millis(),
                        MAX_TYPE_DELAY.as_millis()
                    ));
                }
                Action::Type { text, delay }
            }
            RawAction::Wait { ms } => {
                let d = Duration::from_millis(ms);
                if d > MAX_WAIT {
                    return Err(format!("`ms` {ms} is beyond {} ms", MAX_WAIT.as_millis()));
                }
                Action::Wait(d)
            }
        })
    }
}

fn key_action(keys: &str, mode: KeyMode) -> Result<Action, String> {
    let combos = keys::parse_keys(keys).map_err(|e| format!("`keys`: {e}"))?;
    Ok(Action::Key { combos, mode })
}

/// A button by name or number; absent means left.
fn button_number(button: Option<RawButton>) -> Result<Button, String> {
    match button {
        None => Ok(1),
        Some(RawButton::Number(n)) if (1..=9).contains(&n) => Ok(n as u8),
        Some(RawButton::Number(n)) => Err(format!("`button` {n} is not 1..9")),
        Some(RawButton::Name(name)) => match name.to_ascii_lowercase().as_str() {
            "left" => Ok(1),
            "middle" => Ok(2),
            "right" => Ok(3),
            "back" => Ok(8),
            "forward" => Ok(9),
            _ => Err(format!(
                "`button` `{name}` is not one of left, middle, right, back, forward or 1..9"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(body: &str) -> Vec<Action> {
        match parse(body.as_bytes(), 1280, 720, Duration::ZERO) {
            Ok(a) => a,
            Err(e) => panic!("{body}: {e}"),
        }
    }

    fn parse_err(body: &str) -> ActionError {
        match parse(body.as_bytes(), 1280, 720, Duration::ZERO) {
            Ok(a) => panic!("{body} parsed as {a:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn single_object_and_list() {
        assert_eq!(
            parse_ok(r#"{"action":"move","x":1,"y":2}"#),
            vec![Action::Move(Point { x: 1, y: 2 })]
        );
        let list = parse_ok(
            r#"[{"action":"click","x":10,"y":20,"button":"right","count":2},
                {"action":"drag","from":[1,2],"to":{"x":3,"y":4}},
                {"action":"scroll","dy":-3},
                {"action":"key","keys":"ctrl+shift+t"},
                {"action":"type","text":"hi"},
                {"action":"wait","ms":5},
                {"action":"down","button":8},{"action":"up"}]"#,
        );
        assert_eq!(list.len(), 8);
        assert_eq!(
            list[0],
            Action::Click {
                at: Some(Point { x: 10, y: 20 }),
                button: 3,
                count: 2
            }
        );
    }

    #[test]
    fn rejections_name_index_and_field() {
        let e = parse_err(
            r#"[{"action":"move","x":1,"y":2},{"action":"move","x":1,"y":2},{"action":"move","x":1280,"y":2}]"#,
        );
        assert!(
            matches!(&e, ActionError::Invalid(m) if m.starts_with("action 2 (move)") && m.contains("outside")),
            "{e}"
        );
        let e = parse_err(r#"[{"action":"key","keys":"ctrl+nope"}]"#);
        assert!(
            matches!(&e, ActionError::Invalid(m) if m.contains("nope")),
            "{e}"
        );
        let e = parse_err(r#"{"action":"move","x":1,"y":2,"z":3}"#);
        assert!(
            matches!(&e, ActionError::Malformed(m) if m.contains("unknown field `z`")),
            "{e}"
        );
        let e = parse_err(r#"{"action":"fly"}"#);
        assert!(
            matches!(&e, ActionError::Malformed(m) if m.contains("action 0 (fly)")),
            "{e}"
        );
        assert!(matches!(parse_err("{"), ActionError::Malformed(_)));
        assert!(matches!(parse_err("[]"), ActionError::Invalid(_)));
        assert!(matches!(
            parse_err(r#"{"action":"click","button":"huge"}"#),
            ActionError::Invalid(_)
        ));
        assert!(matches!(
            parse_err(r#"{"action":"click","count":4}"#),
            ActionError::Invalid(_)
        ));
        assert!(matches!(
            parse_err(r#"{"action":"wait","ms":60001}"#),
            ActionError::Invalid(_)
        ));
        assert!(matches!(
            parse_err(r#"{"action":"type","text":"a\u0007"}"#),
            ActionError::Invalid(_)
        ));
        assert!(matches!(
            parse_err(r#"{"action":"click","x":5}"#),
            ActionError::Invalid(_)
        ));
        let many = format!(
            "[{}]",
            vec![r#"{"action":"wait","ms":0}"#; MAX_ACTIONS + 1].join(",")
        );
        assert!(matches!(parse_err(&many), ActionError::Invalid(_)));
        // i64::MIN has no absolute value: refused, not a panic (or a wrapped 0 clicks).
        assert!(matches!(
            parse_err(r#"{"action":"scroll","dx":-9223372036854775808,"dy":1}"#),
            ActionError::Invalid(m) if m.contains("dx")
        ));
        let long = format!("[{}]", [r#"{"action":"wait","ms":60000}"#; 3].join(","));
        assert!(matches!(parse_err(&long), ActionError::Invalid(_)));
    }
}
