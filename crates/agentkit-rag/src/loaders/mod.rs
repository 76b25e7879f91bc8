//! Loaders: a document's bytes to plain text, with the page and section spans citations need.
//!
//! [`extract`] turns the bytes of one document of a known [`Format`] into an [`Extracted`]:
//! the text to chunk, where each page starts (PDF) and where each section starts (markdown
//! and HTML headings, JSON and CSV rows). Every failure is a typed [`LoadError`], one per
//! document; a loader never panics, even on hostile input (PDF extraction runs behind
//! [`std::panic::catch_unwind`]).
//!
//! The rules every format shares:
//!
//! - the size limit ([`LoadLimits::max_bytes`]) is checked first, before any parsing;
//! - text formats (text, markdown, HTML, JSON, CSV) must be UTF-8: a UTF-8 byte order mark
//!   is dropped and `\r\n` becomes `\n`, so offsets are into [`Extracted::text`], not the
//!   raw bytes;
//! - a document whose text is empty or only whitespace is [`LoadError::Empty`].

mod html;
mod markdown;
mod pdf;
mod rows;

use std::fmt;
use std::path::Path;

/// A document's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Plain text.
    Text,
    /// Markdown (CommonMark); the text is kept as written.
    Markdown,
    /// HTML; rendered to text, headings kept as `#` lines.
    Html,
    /// PDF; text per page.
    Pdf,
    /// JSON: one value, an array of rows, or JSON Lines.
    Json,
    /// CSV with a header row.
    Csv,
}

impl Format {
    /// Every format, in declaration order.
    pub const ALL: [Format; 6] = [
        Format::Text,
        Format::Markdown,
        Format::Html,
        Format::Pdf,
        Format::Json,
        Format::Csv,
    ];

    /// The format's name as serialized (`"text"`, `"markdown"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }

    /// From a file name's extension (txt, text, md, markdown, html, htm, pdf, json,
    /// jsonl/ndjson -> Json, csv), case-insensitive.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" => Format::Text,
            "md" | "markdown" => Format::Markdown,
            "html" | "htm" => Format::Html,
            "pdf" => Format::Pdf,
            "json" | "jsonl" | "ndjson" => Format::Json,
            "csv" => Format::Csv,
            _ => return None,
        })
    }

    /// From a MIME type (text/plain, text/markdown, text/html, application/pdf,
    /// application/json, text/csv, plus a few common aliases such as text/x-markdown,
    /// application/xhtml+xml, application/x-ndjson); parameters such as
    /// `; charset=utf-8` are ignored, case-insensitive.
    pub fn from_mime(mime: &str) -> Option<Format> {
        let essence = mime.split(';').next()?.trim().to_ascii_lowercase();
        Some(match essence.as_str() {
            "text/plain" => Format::Text,
            "text/markdown" | "text/x-markdown" => Format::Markdown,
            "text/html" | "application/xhtml+xml" => Format::Html,
            "application/pdf" => Format::Pdf,
            "application/json"
            | "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Format::Json,
            "text/csv" | "application/csv" => Format::Csv,
            _ => return None,
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits a loader enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// The largest document accepted, in bytes (checked before any parsing).
    pub max_bytes: usize,
}

impl LoadLimits {
    /// The default [`LoadLimits::max_bytes`]: 64 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

/// Where a page starts in [`Extracted::text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageStart {
    /// Byte offset into the text.
    pub offset: usize,
    /// The 1-based page number in the source document.
    pub page: u32,
}

/// Where a section starts in [`Extracted::text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionStart {
    /// Byte offset into the text.
    pub offset: usize,
    /// The heading path, outermost first, joined with `" > "` (`"Guide > Refunds > Timing"`),
    /// or `"row N"` for JSON and CSV rows.
    pub path: String,
}

/// What a loader extracts: plain text plus the spans citations need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The document's text (what gets chunked).
    pub text: String,
    /// Where each page starts: ascending byte offsets into `text` with the 1-based page
    /// number; empty for formats without pages. A page without text has no entry.
    pub pages: Vec<PageStart>,
    /// Where each section starts: ascending byte offsets with the heading path
    /// ("Guide > Refunds > Timing").
    pub sections: Vec<SectionStart>,
}

impl Extracted {
    /// The page holding byte `offset` (None without pages, or before the first page).
    /// Offsets past the end of the text belong to the last page.
    pub fn page_at(&self, offset: usize) -> Option<u32> {
        let i = self.pages.partition_point(|p| p.offset <= offset);
        i.checked_sub(1).map(|i| self.pages[i].page)
    }

    /// The section holding byte `offset` (None before the first section, e.g. text before
    /// a markdown document's first heading).
    pub fn section_at(&self, offset: usize) -> Option<&str> {
        let i = self.sections.partition_point(|s| s.offset <= offset);
        i.checked_sub(1).map(|i| self.sections[i].path.as_str())
    }

    /// The first and last page the bytes `start..end` touch (None without pages).
    /// An empty range is treated as the single byte at `start`.
    pub fn pages_in(&self, start: usize, end: usize) -> Option<(u32, u32)> {
        let first = self.page_at(start)?;
        let last = self
            .page_at(end.saturating_sub(1).max(start))
            .unwrap_or(first);
        Some((first, last))
    }
}

/// Why a document could not be loaded (typed, one per document; never a panic).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// No bytes, or no text after extraction (whitespace only, a PDF without text, JSON
    /// or CSV without rows).
    #[error("the document is empty (no text to extract)")]
    Empty,
    /// A text format (text, markdown, HTML, JSON, CSV) that is not UTF-8.
    #[error("the document is not valid UTF-8 (valid up to byte {valid_up_to})")]
    InvalidUtf8 {
        /// The offset, in the document's bytes (a byte order mark included), of the first
        /// byte that is not UTF-8.
        valid_up_to: usize,
    },
    /// The document is larger than [`LoadLimits::max_bytes`].
    #[error("the document is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The document's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A PDF that could not be read (malformed, encrypted, or one the PDF reader failed or
    /// panicked on).
    #[error("corrupt or unreadable PDF: {0}")]
    CorruptPdf(String),
    /// A structured document (JSON, CSV, HTML) that could not be parsed.
    #[error("could not parse the {format} document: {message}")]
    Parse {
        /// The format being parsed.
        format: Format,
        /// What the parser said.
        message: String,
    },
}

/// Extracts text from a document's bytes.
///
/// The size limit is checked first; then the bytes are decoded (UTF-8 for every format
/// but PDF) and parsed. See the module documentation for the rules every format shares.
pub fn extract(format: Format, bytes: &[u8], limits: &LoadLimits) -> Result<Extracted, LoadError> {
    if bytes.len() > limits.max_bytes {
        return Err(LoadError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    if bytes.is_empty() {
        return Err(LoadError::Empty);
    }
    let extracted = if format == Format::Pdf {
        pdf::extract(bytes)?
    } else {
        let text = decode_text(bytes)?;
        if text.trim().is_empty() {
            return Err(LoadError::Empty);
        }
        match format {
            Format::Markdown => markdown::extract(text),
            Format::Html => html::extract(&text)?,
            Format::Json => rows::extract_json(&text)?,
            Format::Csv => rows::extract_csv(&text)?,
            Format::Text | Format::Pdf => Extracted {
                text,
                ..Extracted::default()
            },
        }
    };
    if extracted.text.trim().is_empty() {
        return Err(LoadError::Empty);
    }
    Ok(extracted)
}

/// UTF-8 check (offsets into the original bytes), byte order mark dropped, `\r\n` to `\n`.
fn decode_text(bytes: &[u8]) -> Result<String, LoadError> {
    let text = std::str::from_utf8(bytes).map_err(|e| LoadError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Ok(if text.contains("\r\n") {
        text.replace("\r\n", "\n")
    } else {
        text.to_owned()
    })
}

/// The heading path: a stack of heading texts by level, shared by markdown and HTML.
#[derive(Debug, Default)]
struct HeadingPath {
    stack: Vec<(u8, String)>,
}

impl HeadingPath {
    /// Enters a heading of `level` (1 for h1): pops headings at the same or a deeper level,
    /// pushes this one and returns the path.
    fn enter(&mut self, level: u8, text: String) -> String {
        while self.stack.last().is_some_and(|(l, _)| *l >= level) {
            self.stack.pop();
        }
        self.stack.push((level, text));
        self.path()
    }

    /// Appends text to the innermost heading (a heading over several lines).
    fn extend_last(&mut self, more: &str) -> String {
        if let Some((_, text)) = self.stack.last_mut() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(more);
        }
        self.path()
    }

    fn path(&self) -> String {
        let mut path = String::new();
        for (i, (_, text)) in self.stack.iter().enumerate() {
            if i > 0 {
                path.push_str(" > ");
            }
            path.push_str(text);
        }
        path
    }
}

/// Collapses runs of whitespace to one space and trims (heading texts).
fn squash_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A panic payload as text.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic without a message".to_owned()
    }
}
