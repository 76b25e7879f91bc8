//! Document loaders through the public API: text, markdown, HTML, PDF, JSON and CSV, with
//! their page and section spans and their typed errors.

use std::path::Path;

use agentkit_rag::loaders::{Extracted, Format, LoadError, LoadLimits, extract};
use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, ObjectId, Stream, dictionary};

const TEXT_FORMATS: [Format; 5] = [
    Format::Text,
    Format::Markdown,
    Format::Html,
    Format::Json,
    Format::Csv,
];

fn load(format: Format, bytes: &[u8]) -> Result<Extracted, LoadError> {
    let result = extract(format, bytes, &LoadLimits::default());
    if let Ok(extracted) = &result {
        check_invariants(extracted);
    }
    result
}

fn ok(format: Format, bytes: &[u8]) -> Extracted {
    match load(format, bytes) {
        Ok(extracted) => extracted,
        Err(e) => panic!("{format} failed to load: {e:?}"),
    }
}

/// Offsets ascend and fall on character boundaries inside the text.
fn check_invariants(e: &Extracted) {
    assert!(!e.text.trim().is_empty(), "a loaded document has text");
    for w in e.pages.windows(2) {
        assert!(
            w[0].offset < w[1].offset,
            "page offsets ascend: {:?}",
            e.pages
        );
        assert!(w[0].page < w[1].page, "page numbers ascend: {:?}", e.pages);
    }
    for w in e.sections.windows(2) {
        assert!(
            w[0].offset < w[1].offset,
            "section offsets ascend: {:?}",
            e.sections
        );
    }
    let offsets = e.pages.iter().map(|p| p.offset);
    for offset in offsets.chain(e.sections.iter().map(|s| s.offset)) {
        assert!(offset < e.text.len(), "offset {offset} inside the text");
        assert!(
            e.text.is_char_boundary(offset),
            "offset {offset} on a char boundary"
        );
    }
}

fn paths(e: &Extracted) -> Vec<&str> {
    e.sections.iter().map(|s| s.path.as_str()).collect()
}

fn offset_of(e: &Extracted, needle: &str) -> usize {
    match e.text.find(needle) {
        Some(offset) => offset,
        None => panic!("{needle:?} not in {:?}", e.text),
    }
}

// ---------------------------------------------------------------------------------------
// Format detection

#[test]
fn format_from_path() {
    let cases = [
        ("notes.txt", Some(Format::Text)),
        ("notes.TEXT", Some(Format::Text)),
        ("docs/guide.md", Some(Format::Markdown)),
        ("README.Markdown", Some(Format::Markdown)),
        ("page.html", Some(Format::Html)),
        ("PAGE.HTM", Some(Format::Html)),
        ("/tmp/report.PDF", Some(Format::Pdf)),
        ("data.json", Some(Format::Json)),
        ("events.jsonl", Some(Format::Json)),
        ("events.NDJSON", Some(Format::Json)),
        ("table.csv", Some(Format::Csv)),
        ("archive.tar.gz", None),
        ("image.png", None),
        ("Makefile", None),
        (".md", None),
        ("", None),
    ];
    for (path, want) in cases {
        assert_eq!(Format::from_path(Path::new(path)), want, "{path}");
    }
}

#[test]
fn format_from_mime() {
    let cases = [
        ("text/plain", Some(Format::Text)),
        ("text/plain; charset=utf-8", Some(Format::Text)),
        ("text/markdown", Some(Format::Markdown)),
        ("text/html;charset=UTF-8", Some(Format::Html)),
        ("Text/HTML", Some(Format::Html)),
        ("application/pdf", Some(Format::Pdf)),
        ("  application/json ; charset=utf-8", Some(Format::Json)),
        ("application/x-ndjson", Some(Format::Json)),
        ("text/csv; header=present", Some(Format::Csv)),
        ("image/png", None),
        ("application/octet-stream", None),
        ("", None),
    ];
    for (mime, want) in cases {
        assert_eq!(Format::from_mime(mime), want, "{mime}");
    }
}

#[test]
fn format_serializes_in_snake_case() {
    for format in Format::ALL {
        let json = serde_json::to_string(&format).expect("serialize");
        assert_eq!(json, format!("\"{}\"", format.as_str()));
        let back: Format = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, format);
    }
    assert_eq!(
        serde_json::to_string(&Format::Markdown).expect("serialize"),
        "\"markdown\""
    );
}

// ---------------------------------------------------------------------------------------
// Limits, encoding, emptiness: every format

#[test]
fn too_large_is_checked_before_anything_else() {
    let limits = LoadLimits { max_bytes: 10 };
    let inputs: [&[u8]; 3] = [
        b"%PDF-1.4 garbage!",
        b"\xff\xfe not utf-8 at all",
        b"{\"a\": [1, 2, 3]}",
    ];
    for format in Format::ALL {
        for bytes in inputs {
            match extract(format, bytes, &limits) {
                Err(LoadError::TooLarge { size, limit }) => {
                    assert_eq!((size, limit), (bytes.len(), 10), "{format}");
                }
                other => panic!("{format}: expected TooLarge, got {other:?}"),
            }
        }
    }
    // At the limit is fine.
    let limits = LoadLimits { max_bytes: 5 };
    let e = extract(Format::Text, b"hello", &limits).expect("at the limit");
    assert_eq!(e.text, "hello");
    assert_eq!(LoadLimits::default().max_bytes, 64 * 1024 * 1024);
}

#[test]
fn invalid_utf8_reports_where_it_stops() {
    for format in TEXT_FORMATS {
        match load(format, b"hello \xff world") {
            Err(LoadError::InvalidUtf8 { valid_up_to }) => assert_eq!(valid_up_to, 6, "{format}"),
            other => panic!("{format}: expected InvalidUtf8, got {other:?}"),
        }
        // The offset counts from the start of the bytes, a byte order mark included; a
        // truncated sequence at the end is invalid too.
        match load(format, b"\xEF\xBB\xBFab\xC3") {
            Err(LoadError::InvalidUtf8 { valid_up_to }) => assert_eq!(valid_up_to, 5, "{format}"),
            other => panic!("{format}: expected InvalidUtf8, got {other:?}"),
        }
    }
}

#[test]
fn empty_and_whitespace_only_documents_are_empty() {
    for format in Format::ALL {
        assert!(
            matches!(load(format, b""), Err(LoadError::Empty)),
            "{format}: no bytes"
        );
    }
    for format in TEXT_FORMATS {
        for bytes in [&b"   \n\t\r\n  "[..], b"\xEF\xBB\xBF", b"\xEF\xBB\xBF \n"] {
            match load(format, bytes) {
                Err(LoadError::Empty) => {}
                other => panic!("{format} {bytes:?}: expected Empty, got {other:?}"),
            }
        }
    }
}

#[test]
fn errors_display_what_went_wrong() {
    let e = extract(Format::Text, b"abcdef", &LoadLimits { max_bytes: 3 }).expect_err("too large");
    assert_eq!(
        e.to_string(),
        "the document is 6 bytes, over the limit of 3"
    );
    let e = load(Format::Json, b"{\"a\": ").expect_err("malformed");
    assert!(
        e.to_string()
            .starts_with("could not parse the json document: "),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// Text

#[test]
fn text_strips_the_bom_and_normalises_line_endings() {
    let e = ok(
        Format::Text,
        b"\xEF\xBB\xBFline one\r\nline two\r\n\r\nline \xC3\xA9 three\n",
    );
    assert_eq!(e.text, "line one\nline two\n\nline \u{e9} three\n");
    assert!(e.pages.is_empty());
    assert!(e.sections.is_empty());
    assert_eq!(e.page_at(0), None);
    assert_eq!(e.section_at(3), None);
}

// ---------------------------------------------------------------------------------------
// Markdown

const GUIDE_MD: &str = "Intro before any heading.

# Guide

Welcome to the guide.

## Refunds

Refunds are issued to the original card.

### Timing

Refunds take five business days.

## Shipping

We ship worldwide.

# Appendix

Glossary.
";

#[test]
fn markdown_sections_follow_the_heading_stack() {
    let e = ok(Format::Markdown, GUIDE_MD.as_bytes());
    assert_eq!(e.text, GUIDE_MD, "markdown is kept as written");
    assert!(e.pages.is_empty());
    assert_eq!(
        paths(&e),
        [
            "Guide",
            "Guide > Refunds",
            "Guide > Refunds > Timing",
            "Guide > Shipping",
            "Appendix"
        ]
    );
    let headings = [
        "# Guide",
        "## Refunds",
        "### Timing",
        "## Shipping",
        "# Appendix",
    ];
    for (section, heading) in e.sections.iter().zip(headings) {
        assert!(
            e.text[section.offset..].starts_with(heading),
            "{:?} points at {:?}",
            section.path,
            &e.text[section.offset..section.offset + 12]
        );
    }
    assert_eq!(e.section_at(0), None, "text before the first heading");
    assert_eq!(e.section_at(offset_of(&e, "Welcome")), Some("Guide"));
    assert_eq!(
        e.section_at(offset_of(&e, "original card")),
        Some("Guide > Refunds")
    );
    assert_eq!(
        e.section_at(offset_of(&e, "five business")),
        Some("Guide > Refunds > Timing")
    );
    assert_eq!(
        e.section_at(offset_of(&e, "worldwide")),
        Some("Guide > Shipping")
    );
    assert_eq!(e.section_at(offset_of(&e, "Glossary")), Some("Appendix"));
    // The heading's own first byte is in its section; the byte before is not.
    let timing = e.sections[2].offset;
    assert_eq!(e.section_at(timing), Some("Guide > Refunds > Timing"));
    assert_eq!(e.section_at(timing - 1), Some("Guide > Refunds"));
    assert_eq!(e.section_at(usize::MAX), Some("Appendix"));
}

#[test]
fn markdown_headings_setext_inline_and_skipped_levels() {
    let md = "Title with `code` and *emphasis*\n===\n\ntext\n\n\
              ### Deep first\n\nbody\n\n## Middle {#middle}\n\nbody\n\nSub\n---\n\nend\n";
    let e = ok(Format::Markdown, md.as_bytes());
    assert_eq!(
        paths(&e),
        [
            "Title with code and emphasis",
            "Title with code and emphasis > Deep first",
            "Title with code and emphasis > Middle",
            // A setext `---` heading is a level 2: it closes "Middle".
            "Title with code and emphasis > Sub",
        ]
    );
    assert!(e.text[e.sections[0].offset..].starts_with("Title with"));
    assert!(e.text[e.sections[3].offset..].starts_with("Sub\n---"));
}

#[test]
fn markdown_ignores_code_blocks_and_front_matter() {
    let md = "---\ntitle: Not a heading\n---\n\n# Real\n\n```\n# not a heading\n```\n\n    # indented code\n\n#hashtag is not a heading\n";
    let e = ok(Format::Markdown, md.as_bytes());
    assert_eq!(paths(&e), ["Real"]);
    assert_eq!(e.sections[0].offset, offset_of(&e, "# Real"));
}

#[test]
fn markdown_with_crlf_keeps_offsets_on_headings() {
    let md = "\u{feff}intro\r\n\r\n# One\r\n\r\nbody\r\n\r\n## Two\r\n\r\nmore\r\n";
    let e = ok(Format::Markdown, md.as_bytes());
    assert_eq!(e.text, "intro\n\n# One\n\nbody\n\n## Two\n\nmore\n");
    assert_eq!(paths(&e), ["One", "One > Two"]);
    assert_eq!(e.sections[0].offset, 7);
    assert_eq!(e.sections[1].offset, offset_of(&e, "## Two"));
}

#[test]
fn markdown_without_headings_has_no_sections() {
    let e = ok(Format::Markdown, b"Just a paragraph.\n\n* and a list\n");
    assert!(e.sections.is_empty());
    assert_eq!(e.section_at(5), None);
}

// ---------------------------------------------------------------------------------------
// HTML

const GUIDE_HTML: &str = r#"<!DOCTYPE html>
<html><head><title>Page title</title>
<style>body { color: red; }</style>
<script>var secretToken = "abc"; if (a < b) { alert(1); }</script>
</head><body>
<nav><a href="/home">Home</a></nav>
<h1>Guide</h1>
<p>Welcome to the <a href="https://docs.example/guide">full guide</a>, read it <em>carefully</em>.</p>
<h2>Refunds</h2>
<p>Refunds take <b>five</b> business days.</p>
<ul><li>Card</li><li>Bank transfer</li></ul>
<h3>Timing &amp; <i>limits</i></h3>
<p>Within 30&nbsp;days.</p>
<h2>Shipping</h2>
<table><tr><th>Region</th><th>Days</th></tr><tr><td>EU</td><td>3</td></tr></table>
<script>document.write("injected")</script>
</body></html>"#;

#[test]
fn html_text_without_tags_scripts_or_link_noise() {
    let e = ok(Format::Html, GUIDE_HTML.as_bytes());
    let text = &e.text;
    for gone in [
        "<",
        "secretToken",
        "color: red",
        "alert",
        "injected",
        "https://docs.example",
        "[1]",
    ] {
        assert!(!text.contains(gone), "{gone:?} left in {text:?}");
    }
    for kept in [
        "Welcome to the full guide, read it carefully.",
        "Refunds take five business days.",
        "Card",
        "Bank transfer",
        "Within 30\u{a0}days.",
        "Region",
        "EU",
    ] {
        assert!(text.contains(kept), "{kept:?} missing from {text:?}");
    }
    assert!(e.pages.is_empty());
}

#[test]
fn html_headings_become_sections() {
    let e = ok(Format::Html, GUIDE_HTML.as_bytes());
    assert_eq!(
        paths(&e),
        [
            "Guide",
            "Guide > Refunds",
            "Guide > Refunds > Timing & limits",
            "Guide > Shipping"
        ]
    );
    let headings = [
        "# Guide",
        "## Refunds",
        "### Timing & limits",
        "## Shipping",
    ];
    for (section, heading) in e.sections.iter().zip(headings) {
        assert!(
            e.text[section.offset..].starts_with(heading),
            "{:?} at {} points at {:?}",
            section.path,
            section.offset,
            &e.text[section.offset..]
        );
    }
    assert_eq!(
        e.section_at(offset_of(&e, "Home")),
        None,
        "before the first heading"
    );
    assert_eq!(
        e.section_at(offset_of(&e, "five business")),
        Some("Guide > Refunds")
    );
    assert_eq!(
        e.section_at(offset_of(&e, "Within 30")),
        Some("Guide > Refunds > Timing & limits")
    );
    assert_eq!(
        e.section_at(offset_of(&e, "Region")),
        Some("Guide > Shipping")
    );
}

#[test]
fn html_does_not_wrap_long_paragraphs() {
    let sentence = "This sentence is long enough to be wrapped by a narrow renderer. ".repeat(40);
    let html = format!("<p>{sentence}</p><h2>After</h2><p>x</p>");
    let e = ok(Format::Html, html.as_bytes());
    assert!(e.text.contains(sentence.trim()), "{:?}", e.text);
    assert_eq!(paths(&e), ["After"]);
}

#[test]
fn html_adjacent_headings_and_markdown_lookalikes() {
    let html = "<h2>First</h2><h2>Second</h2><p># not a heading</p><h4>Deep</h4><p>x</p>";
    let e = ok(Format::Html, html.as_bytes());
    assert_eq!(paths(&e), ["First", "Second", "Second > Deep"]);
    assert!(e.text.contains("# not a heading"));
}

#[test]
fn html_headings_in_quotes_lists_over_lines_or_empty() {
    let html = "<blockquote><h2>Quoted<br>heading</h2><p>q</p></blockquote>\
                <h3> </h3><p>after empty</p><ol><li><h3>In list</h3>item</li></ol>";
    let e = ok(Format::Html, html.as_bytes());
    assert_eq!(paths(&e), ["Quoted heading", "Quoted heading > In list"]);
    assert!(
        e.text.contains("> ## Quoted\n> ## heading\n"),
        "{:?}",
        e.text
    );
    assert!(
        !e.text.lines().any(|l| l.trim_end() == "###"),
        "{:?}",
        e.text
    );
    assert_eq!(
        e.section_at(offset_of(&e, "after empty")),
        Some("Quoted heading")
    );
    assert_eq!(
        e.section_at(offset_of(&e, "item")),
        Some("Quoted heading > In list")
    );
}

#[test]
fn html_malformed_or_scriptonly() {
    let e = ok(Format::Html, b"<div><p>unclosed <b>bold <i>both</div> tail");
    assert!(e.text.contains("unclosed bold both"), "{:?}", e.text);
    assert!(e.text.contains("tail"));
    let only_script =
        b"<html><head><script>alert(1)</script><style>p{}</style></head><body> </body></html>";
    assert!(matches!(
        load(Format::Html, only_script),
        Err(LoadError::Empty)
    ));
}

#[test]
fn html_deep_nesting_does_not_crash() {
    let depth = 5_000;
    let html = format!(
        "{}deep text{}",
        "<div>".repeat(depth),
        "</div>".repeat(depth)
    );
    match load(Format::Html, html.as_bytes()) {
        Ok(e) => assert!(e.text.contains("deep text")),
        Err(LoadError::Parse { format, .. }) => assert_eq!(format, Format::Html),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// PDF

/// Builds PDFs page by page; every page shares the tree's resources (font `F1` =
/// Helvetica, plus any XObjects added) and media box unless it sets its own.
struct PdfBuilder {
    doc: Document,
    pages_id: ObjectId,
    resources_id: ObjectId,
    xobjects: lopdf::Dictionary,
    kids: Vec<Object>,
}

impl PdfBuilder {
    fn new() -> Self {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let resources_id = doc.new_object_id();
        PdfBuilder {
            doc,
            pages_id,
            resources_id,
            xobjects: lopdf::Dictionary::new(),
            kids: Vec::new(),
        }
    }

    /// Adds a page drawing `operations`, with `extra` entries in its dictionary.
    fn page(&mut self, operations: Vec<Operation>, extra: lopdf::Dictionary) -> ObjectId {
        let content = Content { operations }.encode().expect("encode content");
        let content_id = self.doc.add_object(Stream::new(dictionary! {}, content));
        let mut page = dictionary! {
            "Type" => "Page",
            "Parent" => self.pages_id,
            "Contents" => content_id,
        };
        page.extend(&extra);
        let id = self.doc.add_object(page);
        self.kids.push(id.into());
        id
    }

    /// Adds XObject `name` to the shared resources.
    fn xobject(&mut self, name: &str, dict: lopdf::Dictionary, content: Vec<u8>) {
        let id = self.doc.add_object(Stream::new(dict, content));
        self.xobjects.set(name, id);
    }

    /// The PDF's bytes; `inherit` puts the resources and media box on the page tree.
    fn finish(mut self, inherit: bool) -> Vec<u8> {
        let font_id = self.doc.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type1",
            "BaseFont" => "Helvetica",
        });
        let resources = dictionary! {
            "Font" => dictionary! { "F1" => font_id },
            "XObject" => self.xobjects,
        };
        self.doc
            .objects
            .insert(self.resources_id, Object::Dictionary(resources));
        let count = i64::try_from(self.kids.len()).expect("page count");
        let mut pages = dictionary! { "Type" => "Pages", "Kids" => self.kids, "Count" => count };
        if inherit {
            pages.set("Resources", self.resources_id);
            pages.set("MediaBox", media_box());
        }
        self.doc
            .objects
            .insert(self.pages_id, Object::Dictionary(pages));
        let catalog_id = self.doc.add_object(dictionary! {
            "Type" => "Catalog",
            "Pages" => self.pages_id,
        });
        self.doc.trailer.set("Root", catalog_id);
        let mut bytes = Vec::new();
        self.doc.save_to(&mut bytes).expect("save the PDF");
        bytes
    }
}

fn media_box() -> Vec<Object> {
    vec![0.into(), 0.into(), 612.into(), 792.into()]
}

/// Text operations: `lines` in Helvetica 12, one under the other, from (72, y).
fn text_ops(y: i64, lines: &[&str]) -> Vec<Operation> {
    let mut ops = vec![
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F1".into(), 12.into()]),
        Operation::new("Td", vec![72.into(), y.into()]),
    ];
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            ops.push(Operation::new("Td", vec![0.into(), (-20).into()]));
        }
        ops.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
    }
    ops.push(Operation::new("ET", vec![]));
    ops
}

/// A PDF with one page per entry, each showing its lines.
fn pdf(pages: &[&[&str]]) -> Vec<u8> {
    let mut b = PdfBuilder::new();
    for lines in pages {
        let ops = if lines.is_empty() {
            Vec::new()
        } else {
            text_ops(720, lines)
        };
        b.page(ops, dictionary! {});
    }
    b.finish(true)
}

fn expect_corrupt(bytes: &[u8], what: &str) -> String {
    match load(Format::Pdf, bytes) {
        Err(LoadError::CorruptPdf(message)) => message,
        other => panic!("{what}: expected CorruptPdf, got {other:?}"),
    }
}

#[test]
fn pdf_text_comes_back_with_its_pages() {
    let bytes = pdf(&[
        &["Page one alpha."],
        &["Second page beta.", "More beta text."],
        &["Third page gamma."],
    ]);
    let e = ok(Format::Pdf, &bytes);
    let numbers: Vec<u32> = e.pages.iter().map(|p| p.page).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(e.pages[0].offset, 0);
    assert!(e.text.starts_with("Page one alpha."), "{:?}", e.text);
    assert!(
        e.text[e.pages[1].offset..].starts_with("Second page beta."),
        "{:?}",
        e.text
    );
    assert!(
        e.text[e.pages[2].offset..].starts_with("Third page gamma."),
        "{:?}",
        e.text
    );
    let joint = &e.text[e.pages[1].offset - 2..e.pages[1].offset];
    assert_eq!(joint, "\n\n", "pages joined by a blank line");
    assert_eq!(e.page_at(offset_of(&e, "alpha")), Some(1));
    assert_eq!(e.page_at(offset_of(&e, "beta")), Some(2));
    assert_eq!(e.page_at(offset_of(&e, "More beta")), Some(2));
    assert_eq!(e.page_at(offset_of(&e, "gamma")), Some(3));
    assert_eq!(e.page_at(e.text.len() - 1), Some(3));
    let (alpha, gamma) = (offset_of(&e, "alpha"), offset_of(&e, "gamma"));
    assert_eq!(e.pages_in(alpha, gamma), Some((1, 3)));
    let beta = offset_of(&e, "beta");
    assert_eq!(
        e.pages_in(beta, offset_of(&e, "More beta") + 4),
        Some((2, 2))
    );
    assert!(e.sections.is_empty());
    assert_eq!(e.section_at(0), None);
}

#[test]
fn pdf_pages_without_text_keep_the_others_numbered() {
    let bytes = pdf(&[&["First words."], &[], &["Last words."]]);
    let e = ok(Format::Pdf, &bytes);
    let numbers: Vec<u32> = e.pages.iter().map(|p| p.page).collect();
    assert_eq!(numbers, [1, 3]);
    assert_eq!(e.text, "First words.\n\nLast words.");
    assert_eq!(e.page_at(offset_of(&e, "Last")), Some(3));
}

#[test]
fn pdf_without_text_is_empty() {
    let bytes = pdf(&[&[], &[" "]]);
    assert!(matches!(load(Format::Pdf, &bytes), Err(LoadError::Empty)));
}

#[test]
fn pdf_truncated_or_garbage_is_corrupt() {
    let good = pdf(&[&["Some text on a page."], &["And more on another."]]);
    for cut in [good.len() / 2, good.len() / 3, 40, 9] {
        expect_corrupt(
            &good[..cut],
            &format!("truncated to {cut} of {}", good.len()),
        );
    }
    expect_corrupt(b"not a pdf at all", "plain text");
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..16 {
        let mut bytes = b"%PDF-1.4\n".to_vec();
        for _ in 0..(256 + round * 512) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(seed.to_le_bytes()[0]);
        }
        expect_corrupt(&bytes, &format!("garbage round {round}"));
    }
}

#[test]
fn pdf_reader_panics_become_corrupt_pdf() {
    // Text shown before any font is chosen: pdf-extract unwraps the missing font.
    let mut b = PdfBuilder::new();
    let show = Operation::new("Tj", vec![Object::string_literal("no font")]);
    let ops = vec![
        Operation::new("BT", vec![]),
        show,
        Operation::new("ET", vec![]),
    ];
    b.page(ops, dictionary! { "MediaBox" => media_box() });
    let message = expect_corrupt(&b.finish(false), "Tj without Tf");
    assert!(message.contains("panicked"), "{message}");
    assert!(message.contains("page 1"), "{message}");
}

#[test]
fn pdf_page_tree_loop_is_rejected_not_a_stack_overflow() {
    // A page without /Resources or /MediaBox whose /Parent is itself: pdf-extract would
    // look them up the /Parent chain until the stack overflows (an abort, not a panic).
    let mut b = PdfBuilder::new();
    let page_id = b.page(text_ops(700, &["Looping."]), dictionary! {});
    let page = b.doc.get_object_mut(page_id).and_then(Object::as_dict_mut);
    page.expect("the page").set("Parent", page_id);
    let message = expect_corrupt(&b.finish(false), "parent loop");
    assert!(message.contains("loops"), "{message}");
}

/// A one-page PDF whose page shows text and then draws the form XObject `/X1`, whose
/// content is `form` and which inherits the page's resources (which hold X1 itself).
fn pdf_with_form(form: Vec<Operation>) -> Vec<u8> {
    let mut b = PdfBuilder::new();
    let form_dict = dictionary! {
        "Type" => "XObject",
        "Subtype" => "Form",
        "BBox" => media_box(),
    };
    b.xobject(
        "X1",
        form_dict,
        Content { operations: form }.encode().expect("encode"),
    );
    let mut ops = text_ops(720, &["Page text."]);
    ops.push(Operation::new("Do", vec!["X1".into()]));
    b.page(ops, dictionary! {});
    b.finish(true)
}

#[test]
fn pdf_form_xobjects_are_read() {
    // The form's resources hold the form itself, but it does not draw itself: fine.
    let e = ok(Format::Pdf, &pdf_with_form(text_ops(600, &["Form text."])));
    assert!(e.text.contains("Page text."), "{:?}", e.text);
    assert!(e.text.contains("Form text."), "{:?}", e.text);
}

#[test]
fn pdf_form_drawing_itself_is_rejected_not_a_stack_overflow() {
    let bytes = pdf_with_form(vec![Operation::new("Do", vec!["X1".into()])]);
    let message = expect_corrupt(&bytes, "self-drawing form");
    assert!(message.contains("draws itself"), "{message}");
}

#[test]
fn pdf_with_an_image_keeps_its_text() {
    let mut b = PdfBuilder::new();
    let image = dictionary! {
        "Type" => "XObject",
        "Subtype" => "Image",
        "Width" => 4,
        "Height" => 4,
        "ColorSpace" => "DeviceRGB",
        "BitsPerComponent" => 8,
    };
    let pixels = (0..48u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(200))
        .collect();
    b.xobject("Im1", image, pixels);
    let scale = [100, 0, 0, 100, 100, 100].map(Object::from).to_vec();
    let mut ops = vec![
        Operation::new("q", vec![]),
        Operation::new("cm", scale),
        Operation::new("Do", vec!["Im1".into()]),
        Operation::new("Q", vec![]),
    ];
    ops.extend(text_ops(720, &["Text next to an image."]));
    b.page(ops, dictionary! {});
    let e = ok(Format::Pdf, &b.finish(true));
    assert_eq!(e.text, "Text next to an image.");
    assert_eq!(e.page_at(0), Some(1));
}

// ---------------------------------------------------------------------------------------
// JSON

#[test]
fn json_array_of_objects_is_one_row_each() {
    let json = r#"[
        {"name": "Ada", "age": 36, "tags": ["math", "engines"], "address": {"city": "London"}, "active": true},
        {"zeta": "last key first", "alpha": null}
    ]"#;
    let e = ok(Format::Json, json.as_bytes());
    assert_eq!(
        e.text,
        "name: Ada\nage: 36\ntags: [\"math\",\"engines\"]\naddress: {\"city\":\"London\"}\nactive: true\n\n\
         zeta: last key first\nalpha: null"
    );
    assert_eq!(paths(&e), ["row 1", "row 2"]);
    assert_eq!(e.sections[0].offset, 0);
    assert_eq!(e.sections[1].offset, offset_of(&e, "zeta:"));
    assert_eq!(e.section_at(offset_of(&e, "London")), Some("row 1"));
    assert_eq!(e.section_at(offset_of(&e, "alpha")), Some("row 2"));
    assert!(e.pages.is_empty());
}

#[test]
fn json_object_is_one_row_and_scalars_render_plainly() {
    let e = ok(
        Format::Json,
        br#"{"title": "Refund policy", "body": "Line one.\nLine two.", "n": 1.5}"#,
    );
    assert_eq!(
        e.text,
        "title: Refund policy\nbody: Line one.\nLine two.\nn: 1.5"
    );
    assert_eq!(paths(&e), ["row 1"]);

    let e = ok(
        Format::Json,
        br#"[1, "two", [3, {"b": 2, "a": 1}], {}, "", {"k": "v"}]"#,
    );
    assert_eq!(e.text, "1\n\ntwo\n\n[3,{\"b\":2,\"a\":1}]\n\nk: v");
    assert_eq!(
        paths(&e),
        ["row 1", "row 2", "row 3", "row 6"],
        "rows keep their numbers"
    );

    let e = ok(Format::Json, br#""just a string""#);
    assert_eq!(e.text, "just a string");
}

#[test]
fn json_lines_are_one_row_each() {
    let jsonl = "{\"id\": 1, \"msg\": \"hello\"}\n\n{\"id\": 2, \"msg\": \"world\"}\r\n[1,2]\n";
    let e = ok(Format::Json, jsonl.as_bytes());
    assert_eq!(e.text, "id: 1\nmsg: hello\n\nid: 2\nmsg: world\n\n[1,2]");
    assert_eq!(paths(&e), ["row 1", "row 2", "row 3"]);
    assert_eq!(e.section_at(offset_of(&e, "world")), Some("row 2"));
}

#[test]
fn json_malformed_is_a_parse_error() {
    for bad in [
        &b"{\"a\": "[..],
        b"[1, 2,",
        b"{oops}",
        b"nul",
        b"{\"a\":1}\n{\"a\":2}\n{broken\n",
    ] {
        match load(Format::Json, bad) {
            Err(LoadError::Parse {
                format: Format::Json,
                message,
            }) => {
                assert!(!message.is_empty());
            }
            other => panic!(
                "{:?}: expected a JSON parse error, got {other:?}",
                String::from_utf8_lossy(bad)
            ),
        }
    }
    // A JSON Lines error names its line.
    match load(Format::Json, b"{\"a\":1}\n{\"a\":2}\n{broken\n") {
        Err(LoadError::Parse { message, .. }) => assert!(message.contains("line 3"), "{message}"),
        other => panic!("expected a parse error, got {other:?}"),
    }
    // Deep nesting hits serde_json's recursion limit, not the stack.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        load(Format::Json, deep.as_bytes()),
        Err(LoadError::Parse {
            format: Format::Json,
            ..
        })
    ));
}

#[test]
fn json_without_rows_is_empty() {
    for bytes in [&b"[]"[..], b"{}", b"[{}, {}]", b"\"\"", b"[\"  \"]"] {
        assert!(
            matches!(load(Format::Json, bytes), Err(LoadError::Empty)),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

// ---------------------------------------------------------------------------------------
// CSV

#[test]
fn csv_rows_use_the_header_keys() {
    let csv = "\u{feff}name, age ,city\r\nAda,36,London\r\nBob,41\r\nCy,22,Paris,extra,\r\n\"Doe, Jane\",,\"Multi\nline\"\r\n";
    let e = ok(Format::Csv, csv.as_bytes());
    assert_eq!(
        e.text,
        "name: Ada\nage: 36\ncity: London\n\n\
         name: Bob\nage: 41\n\n\
         name: Cy\nage: 22\ncity: Paris\ncolumn 4: extra\n\n\
         name: Doe, Jane\ncity: Multi\nline"
    );
    assert_eq!(paths(&e), ["row 1", "row 2", "row 3", "row 4"]);
    assert_eq!(e.sections[1].offset, offset_of(&e, "name: Bob"));
    assert_eq!(e.section_at(offset_of(&e, "extra")), Some("row 3"));
    assert_eq!(e.section_at(offset_of(&e, "Jane")), Some("row 4"));
}

#[test]
fn csv_blank_headers_and_blank_rows() {
    let e = ok(Format::Csv, b"id,,note\n1,x,hello\n,,\n2,,bye\n");
    assert_eq!(
        e.text,
        "id: 1\ncolumn 2: x\nnote: hello\n\nid: 2\nnote: bye"
    );
    assert_eq!(paths(&e), ["row 1", "row 3"]);
}

#[test]
fn csv_header_only_is_empty_and_bad_bytes_are_invalid_utf8() {
    assert!(matches!(
        load(Format::Csv, b"a,b,c\n"),
        Err(LoadError::Empty)
    ));
    match load(Format::Csv, b"a,b\n1,caf\xe9\n") {
        Err(LoadError::InvalidUtf8 { valid_up_to }) => assert_eq!(valid_up_to, 9),
        other => panic!("expected InvalidUtf8, got {other:?}"),
    }
}
