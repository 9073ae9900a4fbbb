//! Where a configuration value came from: the text of each file read, byte offsets turned into
//! `file:line`, and the list of errors that every other config module appends to.

use std::fmt;
use std::ops::Range;
use std::rc::Rc;

use super::ConfigError;

/// One configuration text (a file, or the built-in default) and its line index.
#[derive(Debug)]
pub(crate) struct Source {
    /// The name shown in messages: the path as given, or `<built-in default>`.
    pub name: Rc<str>,
    pub text: String,
    /// Byte offset at which each line starts (line 1 starts at 0).
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(name: impl Into<Rc<str>>, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// The 1-based line holding byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i.max(1),
        }
    }

    /// The location of a span in this source.
    pub fn loc(&self, span: &Range<usize>) -> Loc {
        Loc {
            file: Rc::clone(&self.name),
            line: Some(self.line(span.start)),
        }
    }

    /// The location of the whole source (no line).
    pub fn whole(&self) -> Loc {
        Loc {
            file: Rc::clone(&self.name),
            line: None,
        }
    }
}

/// `file:line`, or just `file` when no line applies (e.g. an unreadable file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loc {
    pub file: Rc<str>,
    pub line: Option<usize>,
}

impl Loc {
    /// A place that is not in any file, e.g. the command line after `--`.
    pub fn named(what: &str) -> Self {
        Loc {
            file: Rc::from(what),
            line: None,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file),
            None => write!(f, "{}", self.file),
        }
    }
}

/// Every problem found so far; validation goes on after each one.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    list: Vec<(Loc, ConfigError)>,
}

impl Errors {
    /// Messages are one line each (`deskd check` prints one problem per line).
    fn one_line(message: String) -> String {
        if message.contains('\n') {
            message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            message
        }
    }

    /// A problem with `key` (a dotted path such as `neko.fps` or `service[web].after`).
    pub fn key(&mut self, loc: &Loc, key: &str, message: impl Into<String>) {
        self.list.push((
            loc.clone(),
            ConfigError {
                location: format!("{loc}: {key}"),
                message: Self::one_line(message.into()),
            },
        ));
    }

    /// A problem that belongs to no key (syntax errors, unreadable files).
    pub fn at(&mut self, loc: &Loc, message: impl Into<String>) {
        self.list.push((
            loc.clone(),
            ConfigError {
                location: loc.to_string(),
                message: Self::one_line(message.into()),
            },
        ));
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems in reading order: by file (in the order `files` were read), then line.
    /// Problems outside any file (the command line) come last.
    pub fn into_sorted(mut self, files: &[&str]) -> Vec<ConfigError> {
        self.list.sort_by_key(|(loc, _)| {
            let file = files
                .iter()
                .position(|f| **f == *loc.file)
                .unwrap_or(files.len());
            (file, loc.line.unwrap_or(0))
        });
        self.list.into_iter().map(|(_, e)| e).collect()
    }

    #[cfg(test)]
    pub fn messages(&self) -> Vec<String> {
        self.list.iter().map(|(_, e)| e.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_and_count_newlines() {
        let src = Source::new("f.toml", "a = 1\nb = 2\n\nc = 3".to_string());
        assert_eq!(src.line(0), 1);
        assert_eq!(src.line(5), 1);
        assert_eq!(src.line(6), 2);
        assert_eq!(src.line(12), 3);
        assert_eq!(src.line(13), 4);
        assert_eq!(src.line(1000), 4);
        assert_eq!(src.loc(&(6..7)).to_string(), "f.toml:2");
    }
}
