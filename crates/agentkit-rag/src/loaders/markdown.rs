//! Markdown: the text is kept as written; each heading starts a section.

use std::panic::{AssertUnwindSafe, catch_unwind};

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::{Extracted, HeadingPath, SectionStart, panic_message, squash_whitespace};

/// Keeps `text` as is and records a [`SectionStart`] at each heading.
///
/// If the markdown parser panics (it should not), the text is still returned, without
/// sections: the document is loadable, only its citations are coarser.
pub(super) fn extract(text: String) -> Extracted {
    let sections = match catch_unwind(AssertUnwindSafe(|| sections(&text))) {
        Ok(sections) => sections,
        Err(payload) => {
            tracing::warn!(
                panic = %panic_message(payload.as_ref()),
                "markdown parser panicked; the document is loaded without sections"
            );
            Vec::new()
        }
    };
    Extracted {
        text,
        pages: Vec::new(),
        sections,
    }
}

/// The sections of a markdown document: one per heading (ATX `#` or setext), at the
/// heading's byte offset, with the path of enclosing headings by level.
pub(super) fn sections(text: &str) -> Vec<SectionStart> {
    // Metadata blocks keep YAML front matter ("title: x\n---") from reading as a setext
    // heading; heading attributes keep `{#id}` out of the heading text.
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS;
    let mut path = HeadingPath::default();
    let mut sections: Vec<SectionStart> = Vec::new();
    // The heading being read: its level, offset and text so far.
    let mut open: Option<(HeadingLevel, usize, String)> = None;
    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                open = Some((level, range.start, String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                let Some((level, offset, raw)) = open.take() else {
                    continue;
                };
                let heading = squash_whitespace(&raw);
                if heading.is_empty() {
                    continue;
                }
                let path = path.enter(level as u8, heading);
                // A heading's offset is past the previous one's; guard anyway, the
                // offsets must ascend.
                if sections.last().is_none_or(|s| s.offset < offset) {
                    sections.push(SectionStart { offset, path });
                }
            }
            Event::Text(t) | Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => {
                if let Some((_, _, raw)) = open.as_mut() {
                    raw.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some((_, _, raw)) = open.as_mut() {
                    raw.push(' ');
                }
            }
            _ => {}
        }
    }
    sections
}
