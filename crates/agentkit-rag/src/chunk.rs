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
        Format::Markdown | Format::Html => MarkdownSplitter::new(cfg).chunk_indices(text).collect(),
        _ => TextSplitter::new(cfg).chunk_indices(text).collect(),
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
