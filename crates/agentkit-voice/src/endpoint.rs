//! Turn detection (endpointing): when the user has finished their turn.
//!
//! The user's turn ends a delay after they stop speaking (the VAD's stop) once a final
//! transcript is in: `min_delay` when the words look complete, `max_delay` when they look cut
//! off ("I'd like to", "and", a trailing comma), so a thinking pause does not hand the turn to
//! the agent. Speech resuming before the deadline continues the same turn. With no final
//! transcript yet, the turn waits for one until `max_delay`.

use std::time::Duration;

use tokio::time::Instant;

/// Endpointing delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointingConfig {
    /// Wait after speech stops when the transcript looks complete.
    pub min_delay: Duration,
    /// Wait after speech stops when it looks cut off, and the longest wait for a transcript.
    pub max_delay: Duration,
}

impl Default for EndpointingConfig {
    /// 400 ms and 2.5 s.
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(400),
            max_delay: Duration::from_millis(2500),
        }
    }
}

impl EndpointingConfig {
    /// Delays `min` and `max`; `max` is raised to `min` if smaller.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min_delay: min,
            max_delay: max.max(min),
        }
    }
}

/// Words after which a speaker is rarely done.
const CONTINUATIONS: &[&str] = &[
    "and", "but", "or", "so", "because", "to", "the", "a", "an", "of", "for", "with", "my", "um",
    "uh", "er", "like", "if", "that", "which", "then", "is", "are", "i'd", "i'm", "i",
];

/// Whether `text` reads as a finished turn.
pub fn looks_complete(text: &str) -> bool {
    let t = text.trim_end();
    if t.ends_with([',', '-', '…']) || t.ends_with("...") {
        return false;
    }
    let last = t
        .rsplit(|c: char| c.is_whitespace())
        .next()
        .unwrap_or("")
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
        .to_lowercase();
    if t.ends_with(['.', '?', '!']) {
        return true;
    }
    !CONTINUATIONS.contains(&last.as_str())
}

/// The endpointing state of one user turn.
#[derive(Debug, Clone)]
pub struct TurnDetector {
    config: EndpointingConfig,
    transcript: String,
    speaking: bool,
    stopped_at: Option<Instant>,
}

impl TurnDetector {
    /// A detector.
    pub fn new(config: EndpointingConfig) -> Self {
        Self {
            config,
            transcript: String::new(),
            speaking: false,
            stopped_at: None,
        }
    }

    /// The delays.
    pub fn config(&self) -> EndpointingConfig {
        self.config
    }

    /// The user started (or resumed) speaking.
    pub fn speech_started(&mut self) {
        self.speaking = true;
        self.stopped_at = None;
    }

    /// The user stopped speaking at `at` (the end of their last voiced audio).
    pub fn speech_stopped(&mut self, at: Instant) {
        self.speaking = false;
        self.stopped_at = Some(at);
    }

    /// A final transcript arrived.
    pub fn final_transcript(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if !self.transcript.is_empty() {
            self.transcript.push(' ');
        }
        self.transcript.push_str(text);
    }

    /// The turn's text so far.
    pub fn transcript(&self) -> &str {
        &self.transcript
    }

    /// Whether anything of a turn is under way (speech or words).
    pub fn is_active(&self) -> bool {
        self.speaking || self.stopped_at.is_some() || !self.transcript.is_empty()
    }

    /// When the turn ends if nothing else happens; `None` while the user speaks or before
    /// they spoke.
    pub fn deadline(&self) -> Option<Instant> {
        if self.speaking {
            return None;
        }
        let stopped = self.stopped_at?;
        let wait = if !self.transcript.is_empty() && looks_complete(&self.transcript) {
            self.config.min_delay
        } else {
            self.config.max_delay
        };
        Some(stopped + wait)
    }

    /// At `now`, the finished turn's text if the deadline has passed (the detector is reset;
    /// a turn that ended with no words gives `Some("")`).
    pub fn poll(&mut self, now: Instant) -> Option<String> {
        let deadline = self.deadline()?;
        if now < deadline {
            return None;
        }
        self.stopped_at = None;
        Some(std::mem::take(&mut self.transcript))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completeness_heuristic() {
        assert!(looks_complete("Book me a table for two."));
        assert!(looks_complete("what time is it"));
        assert!(!looks_complete("I'd like to"));
        assert!(!looks_complete("the order number is, um"));
        assert!(!looks_complete("red, green,"));
        assert!(looks_complete("Is it open?"));
    }

    #[tokio::test(start_paused = true)]
    async fn min_and_max_delays() {
        let cfg = EndpointingConfig::new(Duration::from_millis(400), Duration::from_secs(2));
        let mut d = TurnDetector::new(cfg);
        let t0 = Instant::now();
        d.speech_started();
        assert_eq!(d.deadline(), None);
        d.speech_stopped(t0);
        // No words yet: wait for them up to the max.
        assert_eq!(d.deadline(), Some(t0 + Duration::from_secs(2)));
        d.final_transcript("I'd like to");
        assert_eq!(d.deadline(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(d.poll(t0 + Duration::from_millis(1999)), None);
        // They go on: the turn continues.
        d.speech_started();
        d.final_transcript("book a table.");
        let t1 = t0 + Duration::from_secs(3);
        d.speech_stopped(t1);
        assert_eq!(d.deadline(), Some(t1 + Duration::from_millis(400)));
        assert_eq!(d.poll(t1 + Duration::from_millis(399)), None);
        assert_eq!(
            d.poll(t1 + Duration::from_millis(400)).as_deref(),
            Some("I'd like to book a table.")
        );
        assert!(!d.is_active());
    }
}
