//! Sentence chunking of streamed model text, so speech can start with the first sentence
//! instead of the whole reply.

/// Abbreviations whose period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "no", "jr", "sr", "inc",
    "ltd", "approx", "dept", "min", "max",
];

/// Splits streamed text into sentences.
#[derive(Debug, Clone)]
pub struct SentenceChunker {
    buf: String,
    max_chars: usize,
}

impl Default for SentenceChunker {
    fn default() -> Self {
        Self::new(300)
    }
}

impl SentenceChunker {
    /// A chunker that also cuts a sentence longer than `max_chars` at a word boundary.
    pub fn new(max_chars: usize) -> Self {
        Self {
            buf: String::new(),
            max_chars: max_chars.max(20),
        }
    }

    /// Adds streamed text; returns the sentences it completed.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.buf.push_str(text);
        let mut out = Vec::new();
        while let Some(end) = self.boundary() {
            let rest = self.buf.split_off(end);
            let sentence = std::mem::replace(&mut self.buf, rest);
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                out.push(sentence.to_owned());
            }
            let trimmed = self.buf.trim_start().len();
            self.buf.drain(..self.buf.len() - trimmed);
        }
        out
    }

    /// The text left at the end of the stream, if any.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_owned())
    }

    /// Drops any buffered text.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The byte index just after the first complete sentence, if one is complete.
    fn boundary(&self) -> Option<usize> {
        let b = self.buf.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'\n' && i > 0 {
                return Some(i + 1);
            }
            if !matches!(c, b'.' | b'!' | b'?') {
                continue;
            }
            // The next character must be known and be a space (so "3.5" and "...a" wait).
            let Some(&next) = b.get(i + 1) else {
                break;
            };
            if !next.is_ascii_whitespace() {
                continue;
            }
            if c == b'.' && self.is_abbreviation(i) {
                continue;
            }
            return Some(i + 1);
        }
        if self.buf.len() > self.max_chars {
            let cut = self.buf[..self.max_chars]
                .rfind(char::is_whitespace)
                .filter(|&i| i > 0)
                .unwrap_or_else(|| floor_char_boundary(&self.buf, self.max_chars));
            return Some(cut);
        }
        None
    }

    /// Whether the period at `dot` ends an abbreviation or an initial.
    fn is_abbreviation(&self, dot: usize) -> bool {
        let word = self.buf[..dot]
            .rsplit(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("");
        let lower = word.to_lowercase();
        ABBREVIATIONS.contains(&lower.as_str())
            || (word.chars().count() == 1 && word.chars().all(|c| c.is_uppercase()))
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(deltas: &[&str]) -> Vec<String> {
        let mut c = SentenceChunker::default();
        let mut out: Vec<String> = deltas.iter().flat_map(|d| c.push(d)).collect();
        out.extend(c.finish());
        out
    }

    #[test]
    fn sentences_across_deltas() {
        assert_eq!(
            chunk(&[
                "Hel",
                "lo there! Your order",
                " ships on Mon",
                "day. Dr. Smith will call",
                " at 3.30 p",
                "m"
            ]),
            vec![
                "Hello there!",
                "Your order ships on Monday.",
                "Dr. Smith will call at 3.30 pm"
            ]
        );
    }

    #[test]
    fn the_first_sentence_is_released_as_soon_as_it_ends() {
        let mut c = SentenceChunker::default();
        assert!(
            c.push("Sure.").is_empty(),
            "the next character is not known yet"
        );
        assert_eq!(c.push(" Let"), vec!["Sure."]);
        assert_eq!(c.finish().as_deref(), Some("Let"));
    }

    #[test]
    fn long_runs_are_cut_at_words() {
        let text = "word ".repeat(100);
        let out = chunk(&[&text]);
        assert!(out.len() >= 2);
        assert!(out.iter().all(|s| s.len() <= 300));
        assert_eq!(out.join(" "), text.trim());
        // No spaces at all, multibyte: cut on a char boundary.
        let out = chunk(&[&"é".repeat(400)]);
        assert_eq!(out.concat(), "é".repeat(400));
    }
}
