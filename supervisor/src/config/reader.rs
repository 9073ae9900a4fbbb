//! Reading one TOML table key by key: every value is deserialized on its own (serde, with
//! `deny_unknown_fields` on nested types) so that one bad key does not hide the next, each
//! error carries the file, line and dotted key it belongs to, and keys nobody asked for are
//! reported as unknown.

use std::ops::Range;

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::source::{Errors, Loc, Source};

/// A parsed TOML value with its byte span.
pub(crate) type Value<'a> = Spanned<DeValue<'a>>;

/// One `key = value` of a table, with the file it came from.
#[derive(Clone)]
pub(crate) struct Entry<'a> {
    pub key: &'a str,
    pub key_span: Range<usize>,
    pub value: &'a Value<'a>,
    pub src: &'a Source,
}

impl<'a> Entry<'a> {
    /// Where the value is written.
    pub fn loc(&self) -> Loc {
        self.src.loc(&self.value.span())
    }

    /// Where the key is written.
    pub fn key_loc(&self) -> Loc {
        self.src.loc(&self.key_span)
    }
}

/// A value that was read, with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Val<T> {
    pub v: T,
    pub loc: Loc,
}

/// A table being read; call [`Table::finish`] to report unknown keys.
pub(crate) struct Table<'a> {
    /// Dotted path for messages, e.g. `neko` or `service[web].backoff`.
    path: String,
    /// Where the table starts (its header or inline `{`).
    at: Loc,
    entries: Vec<Entry<'a>>,
    known: Vec<&'static str>,
}

impl<'a> Table<'a> {
    /// The entries of one parsed table.
    pub fn from_de(
        path: impl Into<String>,
        src: &'a Source,
        span: Range<usize>,
        table: &'a DeTable<'a>,
    ) -> Self {
        Table {
            path: path.into(),
            at: src.loc(&span),
            entries: table
                .iter()
                .map(|(k, v)| Entry {
                    key: k.get_ref().as_ref(),
                    key_span: k.span(),
                    value: v,
                    src,
                })
                .collect(),
            known: Vec::new(),
        }
    }

    /// Entries gathered from several files (later ones already won).
    pub fn merged(path: impl Into<String>, at: Loc, entries: Vec<Entry<'a>>) -> Self {
        Table {
            path: path.into(),
            at,
            entries,
            known: Vec::new(),
        }
    }

    pub fn at(&self) -> &Loc {
        &self.at
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// `path.key`, for messages.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Renames the table in later messages (e.g. once a service's name is known).
    pub fn set_path(&mut self, path: impl Into<String>) {
        self.path = path.into();
    }

    /// The raw entry of `key`, marking the key as known.
    pub fn entry(&mut self, key: &'static str) -> Option<Entry<'a>> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        self.entries.iter().find(|e| e.key == key).cloned()
    }

    /// Whether `key` is set (marks it known).
    pub fn has(&mut self, key: &'static str) -> bool {
        self.entry(key).is_some()
    }

    /// Deserializes the value of `key`; a wrong type is recorded and gives `None`.
    pub fn get<T: DeserializeOwned>(
        &mut self,
        key: &'static str,
        errs: &mut Errors,
    ) -> Option<Val<T>> {
        let entry = self.entry(key)?;
        let loc = entry.loc();
        match T::deserialize(entry.value.clone().into_deserializer()) {
            Ok(v) => Some(Val { v, loc }),
            Err(e) => {
                let at = e.span().map(|s| entry.src.loc(&s)).unwrap_or(loc);
                errs.key(&at, &self.key_path(key), e.message());
                None
            }
        }
    }

    /// A list of strings, each with the line it is written on.
    pub fn list(&mut self, key: &'static str, errs: &mut Errors) -> Option<Vec<Val<String>>> {
        let entry = self.entry(key)?;
        let items = self.get::<Vec<Spanned<String>>>(key, errs)?;
        Some(
            items
                .v
                .into_iter()
                .map(|s| Val {
                    loc: entry.src.loc(&s.span()),
                    v: s.into_inner(),
                })
                .collect(),
        )
    }

    /// Reads `key` and converts it with `parse`; a failed conversion is recorded.
    pub fn parse<T: DeserializeOwned, U>(
        &mut self,
        key: &'static str,
        errs: &mut Errors,
        parse: impl FnOnce(T) -> Result<U, String>,
    ) -> Option<Val<U>> {
        let raw = self.get::<T>(key, errs)?;
        match parse(raw.v) {
            Ok(v) => Some(Val { v, loc: raw.loc }),
            Err(message) => {
                errs.key(&raw.loc, &self.key_path(key), message);
                None
            }
        }
    }

    /// The nested table at `key` (inline `{ ... }` or `[a.b]`).
    pub fn table(&mut self, key: &'static str, errs: &mut Errors) -> Option<Table<'a>> {
        let entry = self.entry(key)?;
        match entry.value.get_ref() {
            DeValue::Table(t) => Some(Table::from_de(
                self.key_path(key),
                entry.src,
                entry.value.span(),
                t,
            )),
            other => {
                errs.key(
                    &entry.loc(),
                    &self.key_path(key),
                    format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// The keys that are set, sorted by name.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.entries.iter().map(|e| e.key)
    }

    /// Reports every key that was never asked for.
    pub fn finish(self, errs: &mut Errors) {
        for entry in &self.entries {
            if !self.known.contains(&entry.key) {
                let mut expected: Vec<&str> = self.known.clone();
                expected.sort_unstable();
                errs.key(
                    &entry.key_loc(),
                    &self.key_path(entry.key),
                    format!("unknown key (expected one of: {})", expected.join(", ")),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_table(text: &str, f: impl FnOnce(&mut Table<'_>, &mut Errors)) -> Vec<String> {
        let src = Source::new("t.toml", text.to_string());
        let doc = match DeTable::parse(&src.text) {
            Ok(doc) => doc,
            Err(e) => panic!("test input must parse: {e}"),
        };
        let mut errs = Errors::default();
        let mut table = Table::from_de("sec", &src, doc.span(), doc.get_ref());
        f(&mut table, &mut errs);
        table.finish(&mut errs);
        errs.messages()
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let errs = with_table("a = 1\nb = \"x\"\n", |t, errs| {
            assert_eq!(t.get::<u32>("a", errs).map(|v| v.v), Some(1));
            assert!(t.get::<u32>("b", errs).is_none());
        });
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("t.toml:2: sec.b: "), "{errs:?}");
    }

    #[test]
    fn every_unknown_key_is_reported() {
        let errs = with_table("a = 1\nzz = 2\nyy = 3\n", |t, errs| {
            let _ = t.get::<u32>("a", errs);
        });
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs
            .iter()
            .any(|e| e.starts_with("t.toml:2: sec.zz: unknown key")));
        assert!(errs
            .iter()
            .any(|e| e.starts_with("t.toml:3: sec.yy: unknown key")));
    }
}
