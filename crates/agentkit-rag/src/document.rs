//! [`Document`]: what a host hands the ingestion pipeline.

use std::collections::BTreeMap;
use std::path::Path;

use agentkit_core::{Error, Result};

use crate::loaders::{Format, LoadLimits};

/// A document to index: its bytes, format and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Id, unique within the tenant and agent (a re-ingested id replaces the old version).
    pub id: String,
    /// Title or file name, shown in citations.
    pub title: Option<String>,
    /// How to read the bytes.
    pub format: Format,
    /// The raw bytes.
    pub bytes: Vec<u8>,
    /// Metadata copied onto every chunk (filterable in searches).
    pub metadata: BTreeMap<String, String>,
}

impl Document {
    /// A document from bytes.
    pub fn new(id: impl Into<String>, format: Format, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            id: id.into(),
            title: None,
            format,
            bytes: bytes.into(),
            metadata: BTreeMap::new(),
        }
    }

    /// A plain-text document.
    pub fn text(id: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new(id, Format::Text, text.into().into_bytes())
    }

    /// A Markdown document.
    pub fn markdown(id: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new(id, Format::Markdown, text.into().into_bytes())
    }

    /// Reads a file; the id is the path as given, the title its file name, the format from its
    /// extension. A file over `limits.max_bytes` is refused before it is read.
    pub fn from_path(path: impl AsRef<Path>, limits: &LoadLimits) -> Result<Self> {
        let path = path.as_ref();
        let format = Format::from_path(path).ok_or_else(|| {
            Error::InvalidInput(format!("{}: unknown document format", path.display()))
        })?;
        let size = std::fs::metadata(path)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?
            .len();
        if size > limits.max_bytes as u64 {
            return Err(Error::InvalidInput(format!(
                "{}: {size} bytes is over the limit of {}",
                path.display(),
                limits.max_bytes
            )));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
        let mut doc = Self::new(path.display().to_string(), format, bytes);
        doc.title = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Ok(doc)
    }

    /// Sets the title.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Adds a metadata pair.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}
