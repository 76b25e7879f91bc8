//! Per-turn latency: the moments of a turn, and the stage durations between them (which add
//! up to the end-to-end latency by construction).

use std::time::Duration;

use tokio::time::Instant;

/// Where a voice turn's time went, from the moment the user stopped speaking to the first
/// audio of the reply. The stages are consecutive, so they add up to `end_to_end`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnLatency {
    /// User stopped speaking → the last final transcript.
    pub stt: Duration,
    /// Final transcript → the turn was handed to the agent (the endpointing delay).
    pub endpointing: Duration,
    /// Turn handed over → the model's first token.
    pub model: Duration,
    /// First token → the first sentence sent to speech synthesis.
    pub sentence: Duration,
    /// First sentence sent → its first audio.
    pub tts: Duration,
    /// User stopped speaking → the reply's first audio.
    pub end_to_end: Duration,
}

impl TurnLatency {
    /// The stages as `(name, duration)` rows, then `end_to_end` (for tables and logs).
    pub fn rows(&self) -> [(&'static str, Duration); 6] {
        [
            ("stt (stopped → final transcript)", self.stt),
            ("endpointing (final → turn end)", self.endpointing),
            ("model (turn end → first token)", self.model),
            ("sentence (first token → first sentence)", self.sentence),
            ("tts (first sentence → first audio)", self.tts),
            ("end to end (stopped → first audio)", self.end_to_end),
        ]
    }
}

impl std::fmt::Display for TurnLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, d) in self.rows() {
            writeln!(f, "{name:<42} {:>8.1} ms", d.as_secs_f64() * 1000.0)?;
        }
        Ok(())
    }
}

/// The moments of one turn, filled in as they happen.
#[derive(Debug, Clone, Default)]
pub(crate) struct Marks {
    pub(crate) user_stopped: Option<Instant>,
    pub(crate) stt_final: Option<Instant>,
    pub(crate) committed: Option<Instant>,
    pub(crate) first_token: Option<Instant>,
    pub(crate) first_sentence: Option<Instant>,
    pub(crate) first_audio: Option<Instant>,
}

impl Marks {
    /// The stage durations; a missing or out-of-order moment counts as the one before it, so
    /// the stages still add up.
    pub(crate) fn latency(&self) -> TurnLatency {
        let Some(start) = self.user_stopped.or(self.committed) else {
            return TurnLatency::default();
        };
        let mut last = start;
        let mut next = |m: Option<Instant>| {
            let t = m.unwrap_or(last).max(last);
            let d = t - last;
            last = t;
            d
        };
        let stt = next(self.stt_final);
        let endpointing = next(self.committed);
        let model = next(self.first_token);
        let sentence = next(self.first_sentence);
        let tts = next(self.first_audio);
        TurnLatency {
            stt,
            endpointing,
            model,
            sentence,
            tts,
            end_to_end: last - start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stages_add_up_even_out_of_order() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let marks = Marks {
            user_stopped: Some(t),
            // A final transcript that came before the VAD's stop counts as zero.
            stt_final: Some(t - ms(50)),
            committed: Some(t + ms(400)),
            first_token: Some(t + ms(700)),
            first_sentence: Some(t + ms(760)),
            first_audio: Some(t + ms(900)),
        };
        let l = marks.latency();
        assert_eq!(l.stt, ms(0));
        assert_eq!(l.endpointing, ms(400));
        assert_eq!(l.model, ms(300));
        assert_eq!(l.sentence, ms(60));
        assert_eq!(l.tts, ms(140));
        assert_eq!(l.end_to_end, ms(900));
        assert_eq!(
            l.stt + l.endpointing + l.model + l.sentence + l.tts,
            l.end_to_end
        );
    }
}
