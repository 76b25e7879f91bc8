//! PDF: text per page with pdf-extract, pages joined by a blank line.
//!
//! pdf-extract panics on many malformed inputs (it unwraps freely), so every call into it
//! runs behind [`catch_unwind`] and a panic becomes [`LoadError::CorruptPdf`]. A panic and a
//! stack overflow differ, though: the second aborts the process and cannot be caught. Two
//! structures make pdf-extract recurse without end, and both are checked before it runs:
//! a page whose `/Parent` chain loops, and a form XObject that draws itself (`Do`),
//! directly or through others.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pdf_extract::content::Content;
use pdf_extract::{Dictionary, Document, Object, ObjectId, PlainTextOutput, Stream};

use super::{Extracted, LoadError, PageStart, panic_message};

/// How deep form XObjects may nest (`Do` inside a form inside a form ...).
const MAX_FORM_DEPTH: usize = 32;
/// How long a page's `/Parent` chain may be.
const MAX_PARENT_DEPTH: usize = 256;

/// Extracts the text of each page; pages without text are left out of the text and of
/// [`Extracted::pages`].
pub(super) fn extract(bytes: &[u8]) -> Result<Extracted, LoadError> {
    let pages = guarded("reading the PDF", || page_texts(bytes))?;
    let mut text = String::new();
    let mut starts = Vec::new();
    for (page, page_text) in pages {
        let page_text = page_text.trim();
        if page_text.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        starts.push(PageStart {
            offset: text.len(),
            page,
        });
        text.push_str(page_text);
    }
    if text.is_empty() {
        return Err(LoadError::Empty);
    }
    Ok(Extracted {
        text,
        pages: starts,
        sections: Vec::new(),
    })
}

/// Runs `f`, turning a panic into [`LoadError::CorruptPdf`].
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, LoadError>) -> Result<T, LoadError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(LoadError::CorruptPdf(format!(
            "the PDF reader panicked {what}: {}",
            panic_message(payload.as_ref())
        ))),
    }
}

fn corrupt(e: impl std::fmt::Display) -> LoadError {
    LoadError::CorruptPdf(e.to_string())
}

/// Each page's number and raw text, in page order.
fn page_texts(bytes: &[u8]) -> Result<Vec<(u32, String)>, LoadError> {
    let mut doc = Document::load_mem(bytes).map_err(corrupt)?;
    if doc.is_encrypted() {
        // Many encrypted PDFs open with the empty user password (owner-password only).
        doc.decrypt("").map_err(|e| {
            LoadError::CorruptPdf(format!("encrypted PDF (a password is needed): {e}"))
        })?;
    }
    let pages = doc.get_pages();
    let mut texts = Vec::with_capacity(pages.len());
    for (&number, &id) in &pages {
        let text = guarded(&format!("on page {number}"), || {
            check_parents(&doc, id)
                .and_then(|()| check_forms(&doc, id))
                .map_err(|e| LoadError::CorruptPdf(format!("page {number}: {e}")))?;
            let mut text = String::new();
            let mut output = PlainTextOutput::new(&mut text);
            pdf_extract::output_doc_page(&doc, &mut output, number)
                .map_err(|e| LoadError::CorruptPdf(format!("page {number}: {e}")))?;
            Ok(text)
        })?;
        texts.push((number, text));
    }
    Ok(texts)
}

/// pdf-extract looks up inherited attributes (`/Resources`, `/MediaBox`) by recursing up
/// `/Parent`; a loop there would overflow the stack.
fn check_parents(doc: &Document, page: ObjectId) -> Result<(), String> {
    let mut seen = HashSet::new();
    let mut node = doc.get_dictionary(page).map_err(|e| e.to_string())?;
    while let Ok(parent) = node.get(b"Parent").and_then(Object::as_reference) {
        if !seen.insert(parent) || seen.len() > MAX_PARENT_DEPTH {
            return Err(format!(
                "the page tree loops at object {} {}",
                parent.0, parent.1
            ));
        }
        match doc.get_dictionary(parent) {
            Ok(dict) => node = dict,
            Err(_) => break,
        }
    }
    Ok(())
}

/// pdf-extract draws a form XObject (`Do`) by recursing into its content; a form that draws
/// itself would recurse without end. Follows the forms a page actually draws, as
/// pdf-extract does (a form without `/Resources` uses its caller's), and rejects a cycle or
/// nesting deeper than [`MAX_FORM_DEPTH`].
fn check_forms(doc: &Document, page: ObjectId) -> Result<(), String> {
    let Some(resources) = page_resources(doc, page) else {
        return Ok(());
    };
    if !has_xobjects(doc, resources) {
        return Ok(());
    }
    let Ok(content) = doc.get_page_content(page) else {
        return Ok(());
    };
    let mut walk = FormWalk {
        doc,
        on_path: Vec::new(),
        done: HashSet::new(),
    };
    walk.content(&content, resources)
}

struct FormWalk<'a> {
    doc: &'a Document,
    /// The forms being drawn, outermost first.
    on_path: Vec<ObjectId>,
    /// Forms already checked, with everything they draw.
    done: HashSet<ObjectId>,
}

impl<'a> FormWalk<'a> {
    fn content(&mut self, content: &[u8], resources: &'a Dictionary) -> Result<(), String> {
        // Content pdf-extract cannot decode either: it fails there, not here.
        let Ok(content) = Content::decode(content) else {
            return Ok(());
        };
        for op in content.operations.iter().filter(|op| op.operator == "Do") {
            let Some(name) = op.operands.first().and_then(|o| o.as_name().ok()) else {
                continue;
            };
            let Some((id, form)) = self.xobject(resources, name) else {
                continue;
            };
            if self.on_path.contains(&id) {
                return Err(format!("XObject {} {} draws itself", id.0, id.1));
            }
            if self.done.contains(&id) {
                continue;
            }
            if self.on_path.len() >= MAX_FORM_DEPTH {
                return Err(format!("XObjects nest deeper than {MAX_FORM_DEPTH}"));
            }
            let inner = form
                .dict
                .get(b"Resources")
                .ok()
                .and_then(|r| deref(self.doc, r).as_dict().ok())
                .unwrap_or(resources);
            // As pdf-extract reads it.
            let bytes = if form.filters().is_ok() {
                form.decompressed_content()
                    .unwrap_or_else(|_| form.content.clone())
            } else {
                form.content.clone()
            };
            self.on_path.push(id);
            self.content(&bytes, inner)?;
            self.on_path.pop();
            self.done.insert(id);
        }
        Ok(())
    }

    /// The XObject `name` in `resources`, by object id (an XObject written inline in the
    /// resources cannot be reached again, so it needs no check). pdf-extract draws every
    /// XObject as a form, images included, so every kind is followed.
    fn xobject(&self, resources: &'a Dictionary, name: &[u8]) -> Option<(ObjectId, &'a Stream)> {
        let xobjects = deref(self.doc, resources.get(b"XObject").ok()?)
            .as_dict()
            .ok()?;
        let id = xobjects.get(name).ok()?.as_reference().ok()?;
        let stream = self.doc.get_object(id).ok()?.as_stream().ok()?;
        Some((id, stream))
    }
}

/// The page's resources, inherited as pdf-extract inherits them.
fn page_resources(doc: &Document, page: ObjectId) -> Option<&Dictionary> {
    let mut node = doc.get_dictionary(page).ok()?;
    for _ in 0..MAX_PARENT_DEPTH {
        if let Ok(resources) = node.get(b"Resources") {
            return deref(doc, resources).as_dict().ok();
        }
        let parent = node.get(b"Parent").and_then(Object::as_reference).ok()?;
        node = doc.get_dictionary(parent).ok()?;
    }
    None
}

fn has_xobjects(doc: &Document, resources: &Dictionary) -> bool {
    resources
        .get(b"XObject")
        .ok()
        .and_then(|x| deref(doc, x).as_dict().ok())
        .is_some_and(|x| !x.is_empty())
}

/// One reference followed, as pdf-extract follows them.
fn deref<'a>(doc: &'a Document, object: &'a Object) -> &'a Object {
    match object {
        Object::Reference(id) => doc.get_object(*id).unwrap_or(object),
        _ => object,
    }
}
