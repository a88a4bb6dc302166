//! Configuration errors that name the file, the line and the field, in words an operator
//! understands. Every loader collects all the problems it finds instead of stopping at the
//! first, so one `gerbang check` run shows everything to fix.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line, when the problem can be pinned to one.
    pub line: Option<usize>,
    /// 1-based column on that line.
    pub column: Option<usize>,
    /// The field, as written in the file (`user[2].ip_lan`), or empty for the whole file.
    pub field: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": field `{}`: {}", self.field, self.message)
        }
    }
}

/// Every problem found while loading; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The problems, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// An error at a line and column of `file` (or the whole file).
    pub(crate) fn at(
        file: &Path,
        pos: Option<(usize, usize)>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_path_buf(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// A configuration file's text, kept to turn byte spans into lines and columns.
#[derive(Debug)]
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Self { path, text }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        (line, offset - line_start + 1)
    }

    /// An error at a span of this file. Without a span the error is placed where the field
    /// is written (see [`Self::field_span`]), so an operator is always shown a line.
    pub fn error(
        &self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let field = field.into();
        let span = span.unwrap_or_else(|| self.field_span(&field));
        let (line, column) = self.line_col(span.start);
        ConfigError {
            file: self.path.to_path_buf(),
            line: Some(line),
            column: Some(column),
            field,
            message: message.into(),
        }
    }

    /// Where a field named as in errors (`portal.idle_timeout_secs`, `user[1].ip_lan`) is
    /// written: its key; when it is absent, the nearest table that would hold it; else the
    /// start of the file. Errors found after parsing (a value out of range, a field missing
    /// or one that contradicts another) come without a span from serde.
    pub fn field_span(&self, field: &str) -> Range<usize> {
        let mut best = 0..0;
        let Ok(doc) = toml_edit::Document::parse(self.text) else {
            return best;
        };
        let mut table: &dyn toml_edit::TableLike = doc.as_table();
        for segment in field.split('.') {
            let (name, index) = match segment.split_once('[') {
                Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (segment, None),
            };
            let Some((key, item)) = table.get_key_value(name) else {
                break;
            };
            best = key.span().unwrap_or(best);
            let next = match index {
                Some(i) => item.as_array_of_tables().and_then(|a| a.get(i)).map(|t| {
                    best = t.span().unwrap_or_else(|| best.clone());
                    t as &dyn toml_edit::TableLike
                }),
                None => item.as_table_like(),
            };
            match next {
                Some(t) => table = t,
                None => break,
            }
        }
        best
    }

    /// Turns a TOML syntax or shape error (unknown field, wrong type, missing field) into a
    /// located error. The field name is taken from toml's message where it gives one.
    pub fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().to_string();
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"))
            .unwrap_or_default()
            .to_string();
        let message = if message.starts_with("unknown field") {
            format!("{message} (check the spelling; unknown fields are refused)")
        } else {
            message
        };
        self.error(e.span(), field, message)
    }
}

/// Where each line of a text starts, to turn many byte offsets into lines and columns
/// without scanning the text from its start each time.
#[derive(Debug)]
pub(crate) struct Lines(Vec<usize>);

impl Lines {
    pub(crate) fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|(_, b)| *b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        Self(starts)
    }

    /// 1-based line and column of a byte offset (as [`Source::line_col`]).
    pub(crate) fn pos(&self, offset: usize) -> (usize, usize) {
        let line = self.0.partition_point(|&start| start <= offset).max(1);
        let start = self.0.get(line - 1).copied().unwrap_or(0);
        (line, offset.saturating_sub(start) + 1)
    }
}

/// Reads a file as UTF-8, as a located error on failure.
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        field: String::new(),
        message: format!("cannot read the file: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_agrees_with_line_col() {
        for text in ["", "a", "a\nbc\n", "\n\nx = 1\n  y", "no newline"] {
            let src = Source::new(Path::new("f"), text);
            let lines = Lines::new(text);
            for offset in 0..=text.len() {
                assert_eq!(
                    lines.pos(offset),
                    src.line_col(offset),
                    "{text:?} at {offset}"
                );
            }
        }
    }

    #[test]
    fn line_and_column_are_one_based() {
        let src = Source::new(Path::new("x.toml"), "a = 1\nbb = 2\n");
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
        assert_eq!(src.line_col(9), (2, 4));
    }

    /// The field comes from toml's message; these assert it, not the message (which names
    /// the field as well, so a check of the text alone passes with no field found).
    #[test]
    fn toml_errors_name_their_field_and_line() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Pks {
            #[serde(rename = "nomor")]
            _nomor: String,
            #[serde(rename = "kuota")]
            _kuota: u32,
        }
        for (text, field, line) in [
            ("nomor = \"1\"\nkuota = 5\nkuot = 1\n", "kuot", Some(3)),
            ("kuota = 5\n", "nomor", Some(1)),
        ] {
            let src = Source::new(Path::new("t.toml"), text);
            let e = toml::from_str::<Pks>(text)
                .map(|_| ())
                .map_err(|e| src.toml_error(&e))
                .expect_err(text);
            assert_eq!((e.field.as_str(), e.line), (field, line), "{e}");
        }
    }

    #[test]
    fn display_names_file_line_and_field() {
        let src = Source::new(Path::new("config/pks/a.toml"), "x = 1\ny = 2\n");
        let e = src.error(Some(6..7), "y", "must be a string");
        assert_eq!(
            e.to_string(),
            "config/pks/a.toml:2:1: field `y`: must be a string"
        );
    }
}
