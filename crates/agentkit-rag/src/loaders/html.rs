//! HTML: rendered to text with html2text (scripts, styles and tags dropped, no hard wrap);
//! each heading becomes a `#` line that starts a section.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use html2text::render::TextDecorator;

use super::{Extracted, Format, HeadingPath, LoadError, SectionStart, panic_message};

/// Wide enough that html2text never wraps a paragraph (it renders to a fixed width).
const RENDER_WIDTH: usize = 10_000;

/// Starts a heading marker: `MARK_OPEN`, the level's digit, `MARK_CLOSE`. Private-use
/// characters, so that text in the document cannot pass for a heading (short of a document
/// made to contain this exact sequence, which yields a spurious section, nothing worse).
const MARK_OPEN: char = '\u{E000}';
const MARK_CLOSE: char = '\u{E001}';

/// Renders `html` and records a section at each heading (`h1`..`h6`).
pub(super) fn extract(html: &str) -> Result<Extracted, LoadError> {
    let rendered = catch_unwind(AssertUnwindSafe(|| {
        html2text::config::with_decorator(Decorator)
            .allow_width_overflow()
            .no_table_borders()
            .link_footnotes(false)
            .unicode_strikeout(false)
            .string_from_read(html.as_bytes(), RENDER_WIDTH)
    }));
    let rendered = match rendered {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => {
            return Err(LoadError::Parse {
                format: Format::Html,
                message: e.to_string(),
            });
        }
        Err(payload) => {
            return Err(LoadError::Parse {
                format: Format::Html,
                message: format!(
                    "the HTML renderer panicked: {}",
                    panic_message(payload.as_ref())
                ),
            });
        }
    };
    Ok(assemble(&rendered))
}

/// Turns html2text's output into the text (markers to `#` prefixes, trailing spaces
/// dropped, runs of blank lines collapsed) and the sections.
fn assemble(rendered: &str) -> Extracted {
    let mut text = String::with_capacity(rendered.len());
    let mut sections: Vec<SectionStart> = Vec::new();
    let mut path = HeadingPath::default();
    // The level of the heading on the previous line, if it was a heading's line.
    let mut previous_heading: Option<u8> = None;
    let mut blank_pending = false;
    for raw in rendered.lines() {
        let raw = raw.trim_end();
        let (line, heading) = match split_marker(raw) {
            Some((before, level, heading)) if !heading.is_empty() => {
                let hashes = "#".repeat(usize::from(level));
                (
                    Cow::Owned(format!("{before}{hashes} {heading}")),
                    Some((level, heading)),
                )
            }
            // A heading without text (`<h2> </h2>`): nothing to show.
            Some((before, _, _)) => (Cow::Borrowed(before.trim_end()), None),
            None => (Cow::Borrowed(raw), None),
        };
        if line.is_empty() {
            blank_pending = !text.is_empty();
            previous_heading = None;
            continue;
        }
        if blank_pending {
            text.push('\n');
            blank_pending = false;
        }
        let offset = text.len();
        text.push_str(&line);
        text.push('\n');
        let Some((level, heading)) = heading else {
            previous_heading = None;
            continue;
        };
        let heading = super::squash_whitespace(heading);
        if previous_heading == Some(level) {
            // html2text prefixes every line of a heading (`<br>` inside): this one goes on.
            let joined = path.extend_last(&heading);
            if let Some(last) = sections.last_mut() {
                last.path = joined;
            }
        } else {
            let joined = path.enter(level, heading);
            sections.push(SectionStart {
                offset,
                path: joined,
            });
        }
        previous_heading = Some(level);
    }
    Extracted {
        text,
        pages: Vec::new(),
        sections,
    }
}

/// Finds a heading marker in a rendered line: the text before it (a quote or list prefix),
/// the level, and the heading text after it.
fn split_marker(line: &str) -> Option<(&str, u8, &str)> {
    let start = line.find(MARK_OPEN)?;
    let rest = &line[start + MARK_OPEN.len_utf8()..];
    let mut chars = rest.chars();
    let level = chars.next()?.to_digit(10)?;
    if chars.next()? != MARK_CLOSE || !(1..=6).contains(&level) {
        return None;
    }
    let after = &rest[1 + MARK_CLOSE.len_utf8()..];
    let level = u8::try_from(level).ok()?;
    Some((&line[..start], level, after.trim_start()))
}

/// Plain text decorations: no link brackets or footnotes, no emphasis marks, list and
/// quote prefixes kept, headings marked for [`assemble`].
#[derive(Clone, Debug)]
struct Decorator;

impl TextDecorator for Decorator {
    type Annotation = ();

    fn decorate_link_start(&mut self, _url: &str) -> (String, Self::Annotation) {
        (String::new(), ())
    }

    fn decorate_link_end(&mut self) -> String {
        String::new()
    }

    fn decorate_em_start(&self) -> (String, Self::Annotation) {
        (String::new(), ())
    }

    fn decorate_em_end(&self) -> String {
        String::new()
    }

    fn decorate_strong_start(&self) -> (String, Self::Annotation) {
        (String::new(), ())
    }

    fn decorate_strong_end(&self) -> String {
        String::new()
    }

    fn decorate_strikeout_start(&self) -> (String, Self::Annotation) {
        (String::new(), ())
    }

    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }

    fn decorate_code_start(&self) -> (String, Self::Annotation) {
        (String::new(), ())
    }

    fn decorate_code_end(&self) -> String {
        String::new()
    }

    fn decorate_preformat_first(&self) -> Self::Annotation {}

    fn decorate_preformat_cont(&self) -> Self::Annotation {}

    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, Self::Annotation) {
        (title.to_owned(), ())
    }

    fn header_prefix(&self, level: usize) -> String {
        format!("{MARK_OPEN}{}{MARK_CLOSE} ", level.clamp(1, 6))
    }

    fn quote_prefix(&self) -> String {
        "> ".to_owned()
    }

    fn unordered_item_prefix(&self) -> String {
        "* ".to_owned()
    }

    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }

    fn decorate_superscript_start(&self) -> (String, Self::Annotation) {
        ("^".to_owned(), ())
    }

    fn decorate_superscript_end(&self) -> String {
        String::new()
    }

    fn make_subblock_decorator(&self) -> Self {
        Decorator
    }

    fn finalise(
        &mut self,
        _urls: Vec<String>,
    ) -> Vec<html2text::render::TaggedLine<Self::Annotation>> {
        Vec::new()
    }
}
