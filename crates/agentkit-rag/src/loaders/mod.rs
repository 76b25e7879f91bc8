//! Loaders: a document's bytes to plain text, with the page and section spans citations need.
//! (Being written; see `Extracted`.)

/// Being written.
pub struct Extracted;
