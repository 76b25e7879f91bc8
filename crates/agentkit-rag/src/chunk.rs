//! Chunking: extracted text to overlapping chunks of a bounded size (`text-splitter`, which
//! cuts at the highest semantic level that fits: sections, paragraphs, sentences, words),
//! each with the offsets, page and section its citations need.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};

use crate::loaders::{Extracted, Format};
use agentkit_core::{Error, Result};

/// Counts tokens for chunk sizing. Implement it over a real tokenizer (tiktoken, the local
/// embedder's) when chunks must fit a model's exact window; [`EstimatedTokens`] is the default.
pub trait TokenCounter: Send + Sync {
    /// Tokens in `text`.
    fn count(&self, text: &str) -> usize;
}

/// Estimates tokens as a quarter of the UTF-8 bytes (about right for English with OpenAI's and
/// sentence-transformers' tokenizers; constant time, so chunking runs at memory speed).
#[derive(Debug, Clone, Copy, Default)]
pub struct EstimatedTokens;

impl TokenCounter for EstimatedTokens {
    fn count(&self, text: &str) -> usize {
        text.len().div_ceil(4)
    }
}

/// How big a chunk is.
#[derive(Clone)]
#[non_exhaustive]
pub enum ChunkSize {
    /// At most this many characters.
    Characters(usize),
    /// At most this many tokens, as the counter counts them.
    Tokens(usize, Arc<dyn TokenCounter>),
}

impl std::fmt::Debug for ChunkSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkSize::Characters(n) => write!(f, "Characters({n})"),
            ChunkSize::Tokens(n, _) => write!(f, "Tokens({n})"),
        }
    }
}

impl ChunkSize {
    fn max(&self) -> usize {
        match self {
            ChunkSize::Characters(n) | ChunkSize::Tokens(n, _) => *n,
        }
    }

    /// A short stable label, part of every document's content hash (so changing the chunking
    /// re-indexes).
    fn label(&self) -> String {
        match self {
            ChunkSize::Characters(n) => format!("chars:{n}"),
            ChunkSize::Tokens(n, _) => format!("tokens:{n}"),
        }
    }
}

/// Chunking settings. The default: 800 (estimated) tokens with 120 (15 %) of overlap.
#[derive(Debug, Clone)]
pub struct ChunkingConfig {
    /// Chunk size.
    pub size: ChunkSize,
    /// How much of a chunk's end the next chunk repeats, in the size's unit.
    pub overlap: usize,
    /// Whether each chunk's embedded text starts with its section path (the headings above
    /// it), so a chunk deep in a section still matches questions about the section.
    pub carry_sections: bool,
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        Self {
            size: ChunkSize::Tokens(800, Arc::new(EstimatedTokens)),
            overlap: 120,
            carry_sections: true,
        }
    }
}

impl ChunkingConfig {
    /// Chunks of at most `n` characters with `overlap` characters repeated.
    pub fn characters(n: usize, overlap: usize) -> Self {
        Self {
            size: ChunkSize::Characters(n),
            overlap,
            carry_sections: true,
        }
    }

    /// Chunks of at most `n` tokens counted by `counter`, with `overlap` tokens repeated.
    pub fn tokens(n: usize, overlap: usize, counter: Arc<dyn TokenCounter>) -> Self {
        Self {
            size: ChunkSize::Tokens(n, counter),
            overlap,
            carry_sections: true,
        }
    }

    /// What the settings contribute to a document's content hash.
    pub fn fingerprint(&self) -> String {
        format!(
            "{};overlap:{};sections:{}",
            self.size.label(),
            self.overlap,
            self.carry_sections
        )
    }

    fn check(&self) -> Result<()> {
        let max = self.size.max();
        if max == 0 {
            return Err(Error::InvalidConfig("chunk size must be at least 1".into()));
        }
        if self.overlap >= max {
            return Err(Error::InvalidConfig(format!(
                "chunk overlap ({}) must be smaller than the chunk size ({max})",
                self.overlap
            )));
        }
        Ok(())
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document (0-based).
    pub index: usize,
    /// The chunk's text, as it stands in the extracted text.
    pub text: String,
    /// Byte offset in the extracted text.
    pub offset: usize,
    /// Page of the chunk's first byte, when the document has pages.
    pub page: Option<u32>,
    /// Section path of the chunk's first byte.
    pub section: Option<String>,
    /// The text embedded for it: the section path then the text when sections are carried.
    pub embedding_text: String,
    /// SHA-256 (hex) of `embedding_text`: the embedding cache's key.
    pub content_hash: String,
}

/// Splits extracted text into [`Chunk`]s.
#[derive(Clone)]
pub struct Chunker {
    config: ChunkingConfig,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker")
            .field("config", &self.config)
            .finish()
    }
}

struct Counter<'a>(&'a dyn TokenCounter);

impl ChunkSizer for Counter<'_> {
    fn size(&self, chunk: &str) -> usize {
        self.0.count(chunk)
    }
}

/// Counts the characters of text known to be ASCII: its length in bytes.
struct AsciiChars;

impl ChunkSizer for AsciiChars {
    fn size(&self, chunk: &str) -> usize {
        debug_assert!(chunk.is_ascii());
        chunk.len()
    }
}

/// The hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Chunker {
    /// A chunker; fails on a zero size or an overlap not smaller than the size.
    pub fn new(config: ChunkingConfig) -> Result<Self> {
        config.check()?;
        Ok(Self { config })
    }

    /// The settings.
    pub fn config(&self) -> &ChunkingConfig {
        &self.config
    }

    /// The chunks of a document's extracted text (Markdown and HTML are split on their
    /// structure first).
    pub fn chunk(&self, format: Format, doc: &Extracted) -> Result<Vec<Chunk>> {
        let max = self.config.size.max();
        let spans: Vec<(usize, &str)> = match &self.config.size {
            // In ASCII text a character is a byte: the length is the count, in constant time
            // (the splitter sizes many candidate spans per chunk).
            ChunkSize::Characters(_) if doc.text.is_ascii() => {
                let cfg = ChunkConfig::new(max)
                    .with_sizer(AsciiChars)
                    .with_overlap(self.config.overlap)
                    .map_err(|e| Error::InvalidConfig(e.to_string()))?;
                split(format, &doc.text, cfg)
            }
            ChunkSize::Characters(_) => {
                let cfg = ChunkConfig::new(max)
                    .with_overlap(self.config.overlap)
                    .map_err(|e| Error::InvalidConfig(e.to_string()))?;
                split(format, &doc.text, cfg)
            }
            ChunkSize::Tokens(_, counter) => {
                let cfg = ChunkConfig::new(max)
                    .with_sizer(Counter(&**counter))
                    .with_overlap(self.config.overlap)
                    .map_err(|e| Error::InvalidConfig(e.to_string()))?;
                split(format, &doc.text, cfg)
            }
        };
        Ok(spans
            .into_iter()
            .enumerate()
            .map(|(index, (offset, text))| {
                let section = doc.section_at(offset).map(str::to_string);
                let embedding_text = match &section {
                    Some(path) if self.config.carry_sections && !text.starts_with('#') => {
                        format!("{path}\n\n{text}")
                    }
                    _ => text.to_string(),
                };
                Chunk {
                    index,
                    text: text.to_string(),
                    offset,
                    page: doc.page_at(offset),
                    section,
                    content_hash: sha256_hex(embedding_text.as_bytes()),
                    embedding_text,
                }
            })
            .collect())
    }
}

/// Markdown, and HTML (which the loader renders with Markdown headings and lists), is split on
/// its structure; the rest on blank lines, lines, sentences and words.
fn split<S: ChunkSizer>(format: Format, text: &str, cfg: ChunkConfig<S>) -> Vec<(usize, &str)> {
    match format {
        Format::Markdown | Format::Html => {
            let splitter = MarkdownSplitter::new(cfg);
            in_windows(text, WINDOW_BYTES, |t| splitter.chunk_indices(t).collect())
        }
        _ => {
            let splitter = TextSplitter::new(cfg);
            in_windows(text, WINDOW_BYTES, |t| splitter.chunk_indices(t).collect())
        }
    }
}

/// The window a long text is chunked through (see [`in_windows`]).
const WINDOW_BYTES: usize = 64 * 1024;

/// The chunks `chunk` makes of `text`, made window by window: `text-splitter` weighs every
/// boundary of the *remaining* text for each chunk it cuts, so on one long text its cost grows
/// with the square of the length (a 4 MiB text chunked ~3× slower per byte than 64 KiB
/// windows of it). Each window is chunked, all its chunks but the last are kept, and the next
/// window starts where that last chunk started — the position the splitter would have reached
/// on the whole text — so the chunks are the ones the whole text gives (tested below), made
/// in linear time. A window that yields fewer than two chunks (a chunk longer than the window)
/// is chunked with the rest of the text in one call.
fn in_windows<'t>(
    text: &'t str,
    window: usize,
    chunk: impl Fn(&'t str) -> Vec<(usize, &'t str)>,
) -> Vec<(usize, &'t str)> {
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let rest = &text[start..];
        if rest.len() <= window * 2 {
            out.extend(chunk(rest).into_iter().map(|(o, t)| (start + o, t)));
            return out;
        }
        let mut end = window;
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let mut chunks = chunk(&rest[..end]);
        let next = match chunks.pop() {
            Some((offset, _)) if !chunks.is_empty() && offset > 0 => offset,
            _ => {
                out.extend(chunk(rest).into_iter().map(|(o, t)| (start + o, t)));
                return out;
            }
        };
        out.extend(chunks.into_iter().map(|(o, t)| (start + o, t)));
        start += next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extracted(text: &str) -> Extracted {
        Extracted {
            text: text.to_string(),
            ..Extracted::default()
        }
    }

    #[test]
    fn ascii_text_is_split_exactly_as_by_characters() {
        let text = "The refund policy applies within thirty days. ".repeat(200)
            + "\n\nShipping is free above fifty euros.\n\n"
            + &"Invoices are sent monthly to the billing contact. ".repeat(150);
        let chunker = Chunker::new(ChunkingConfig::characters(300, 40)).expect("chunks");
        let ours: Vec<(usize, String)> = chunker
            .chunk(Format::Text, &extracted(&text))
            .expect("chunks")
            .into_iter()
            .map(|c| (c.offset, c.text))
            .collect();
        let reference: Vec<(usize, String)> =
            TextSplitter::new(ChunkConfig::new(300).with_overlap(40).expect("chunks"))
                .chunk_indices(&text)
                .map(|(o, t)| (o, t.to_string()))
                .collect();
        assert!(ours.len() > 10);
        assert_eq!(ours, reference);
    }

    /// A long text of sections, paragraphs of varied length, lists and code blocks.
    fn long_text(bytes: usize, markdown: bool) -> String {
        let words: Vec<&str> = "refund policy customer order shipping the a within days \
                                warehouse invoice payment support agent ticket and of to"
            .split_whitespace()
            .collect();
        let mut seed = 7_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut out = String::new();
        let mut section = 0;
        while out.len() < bytes {
            section += 1;
            if markdown {
                out.push_str(&format!("## Section {section}\n\n"));
            }
            for p in 0..1 + next(6) {
                for w in 0..5 + next(140) {
                    out.push_str(words[next(words.len())]);
                    out.push(if w % 17 == 16 { '.' } else { ' ' });
                }
                out.push_str(if p % 3 == 2 { "\n" } else { "\n\n" });
                if markdown && p == 1 {
                    out.push_str(
                        "- one item\n- two items\n\n```\nlet x = 1;\n\n# not a heading\n```\n\n",
                    );
                }
            }
        }
        out
    }

    #[test]
    fn long_texts_chunk_in_windows_exactly_as_in_one_call() {
        for (format, markdown) in [(Format::Text, false), (Format::Markdown, true)] {
            let text = long_text(600 * 1024, markdown);
            let configs = [
                ChunkingConfig::characters(3200, 480),
                ChunkingConfig::characters(500, 0),
                ChunkingConfig::default(),
            ];
            for config in configs {
                let max = config.size.max();
                let cfg = ChunkConfig::new(max)
                    .with_overlap(config.overlap)
                    .expect("config");
                let whole: Vec<(usize, &str)> = match (&config.size, markdown) {
                    (ChunkSize::Tokens(..), false) => TextSplitter::new(
                        ChunkConfig::new(max)
                            .with_sizer(Counter(&EstimatedTokens))
                            .with_overlap(config.overlap)
                            .expect("config"),
                    )
                    .chunk_indices(&text)
                    .collect(),
                    (ChunkSize::Tokens(..), true) => MarkdownSplitter::new(
                        ChunkConfig::new(max)
                            .with_sizer(Counter(&EstimatedTokens))
                            .with_overlap(config.overlap)
                            .expect("config"),
                    )
                    .chunk_indices(&text)
                    .collect(),
                    (_, false) => TextSplitter::new(cfg).chunk_indices(&text).collect(),
                    (_, true) => MarkdownSplitter::new(cfg).chunk_indices(&text).collect(),
                };
                let ours: Vec<(usize, String)> = Chunker::new(config.clone())
                    .expect("chunker")
                    .chunk(format, &extracted(&text))
                    .expect("chunks")
                    .into_iter()
                    .map(|c| (c.offset, c.text))
                    .collect();
                let whole: Vec<(usize, String)> =
                    whole.into_iter().map(|(o, t)| (o, t.to_string())).collect();
                assert!(whole.len() > 100, "{config:?}");
                assert_eq!(ours.len(), whole.len(), "{format:?} {config:?}");
                assert_eq!(ours, whole, "{format:?} {config:?}");
            }
        }
    }

    #[test]
    fn non_ascii_text_is_sized_in_characters_not_bytes() {
        // Two bytes per character: a byte-sized chunk of 300 would hold only 150 characters.
        let text = "élève à Noël, façade où ça bâille. ".repeat(300);
        let chunker = Chunker::new(ChunkingConfig::characters(300, 0)).expect("chunks");
        let chunks = chunker
            .chunk(Format::Text, &extracted(&text))
            .expect("chunks");
        assert!(chunks.iter().all(|c| c.text.chars().count() <= 300));
        assert!(
            chunks.iter().any(|c| c.text.len() > 300),
            "chunks are sized in characters"
        );
    }
}
