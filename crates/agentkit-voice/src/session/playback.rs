//! The session's outgoing audio, paced at the speed it plays: frames are released to the host
//! a little ahead of real time, so what is still queued can be dropped on barge-in and what was
//! played is known.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::audio::AudioFrame;

#[derive(Debug)]
struct Queued {
    context: String,
    frame: AudioFrame,
    interruptible: bool,
}

/// The playback queue.
#[derive(Debug)]
pub(crate) struct Playback {
    queue: VecDeque<Queued>,
    /// When the next frame starts playing at the far end (`None`: nothing is playing).
    clock: Option<Instant>,
    /// How far ahead of real time frames are released.
    lead: Duration,
    paused: bool,
    /// Whether the audio released last (and still playing) can be interrupted.
    playing_interruptible: bool,
}

impl Playback {
    pub(crate) fn new(lead: Duration) -> Self {
        Self {
            queue: VecDeque::new(),
            clock: None,
            lead,
            paused: false,
            playing_interruptible: true,
        }
    }

    pub(crate) fn push(&mut self, context: String, frame: AudioFrame, interruptible: bool) {
        self.queue.push_back(Queued {
            context,
            frame,
            interruptible,
        });
    }

    /// Whether audio is queued or still playing at the far end.
    pub(crate) fn is_speaking(&self, now: Instant) -> bool {
        !self.queue.is_empty() || self.clock.is_some_and(|c| c > now)
    }

    /// When the audio released so far ends playing, if it still plays at `now`.
    pub(crate) fn playing_until(&self, now: Instant) -> Option<Instant> {
        self.clock.filter(|&c| c > now)
    }

    /// Whether what plays now (or next) may be interrupted.
    pub(crate) fn interruptible(&self, now: Instant) -> bool {
        match self.queue.front() {
            _ if self.clock.is_some_and(|c| c > now) && !self.playing_interruptible => false,
            Some(q) => q.interruptible,
            None => self.playing_interruptible,
        }
    }

    /// Stops releasing frames (what was released plays on at the far end).
    pub(crate) fn pause(&mut self) {
        self.paused = true;
    }

    /// Releases frames again from `now`.
    pub(crate) fn resume(&mut self, now: Instant) {
        if self.paused {
            self.paused = false;
            if self.clock.is_some_and(|c| c < now) {
                self.clock = Some(now);
            }
        }
    }

    /// Drops the interruptible frames; returns how many were dropped.
    pub(crate) fn interrupt(&mut self) -> usize {
        let before = self.queue.len();
        self.queue.retain(|q| !q.interruptible);
        self.paused = false;
        before - self.queue.len()
    }

    /// When the next frame is due for release, if any is waiting and playback is not paused.
    pub(crate) fn next_release(&self, now: Instant) -> Option<Instant> {
        if self.paused || self.queue.is_empty() {
            return None;
        }
        let clock = self.clock.filter(|&c| c > now).unwrap_or(now);
        Some(clock.checked_sub(self.lead).unwrap_or(clock).max(now))
    }

    /// The frames due at `now` (each with its context).
    pub(crate) fn release(&mut self, now: Instant) -> Vec<(String, AudioFrame)> {
        let mut out = Vec::new();
        if self.paused {
            return out;
        }
        loop {
            let clock = self.clock.filter(|&c| c > now).unwrap_or(now);
            if clock > now + self.lead {
                break;
            }
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            self.clock = Some(clock + q.frame.duration());
            self.playing_interruptible = q.interruptible;
            out.push((q.context, q.frame));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{AudioFormat, FRAME};

    #[tokio::test(start_paused = true)]
    async fn frames_are_released_at_playing_speed() {
        let mut p = Playback::new(Duration::from_millis(40));
        for _ in 0..10 {
            p.push(
                "a".into(),
                AudioFrame::silence(AudioFormat::SPEECH, FRAME),
                true,
            );
        }
        let t0 = Instant::now();
        // 40 ms of lead: three frames (0, 20, 40 ms) go at once.
        assert_eq!(p.release(t0).len(), 3);
        assert_eq!(p.next_release(t0), Some(t0 + Duration::from_millis(20)));
        assert_eq!(p.release(t0 + Duration::from_millis(20)).len(), 1);
        p.pause();
        assert!(p.release(t0 + Duration::from_millis(100)).is_empty());
        p.resume(t0 + Duration::from_millis(100));
        assert_eq!(p.release(t0 + Duration::from_millis(100)).len(), 3);
        assert_eq!(p.interrupt(), 3);
        assert!(
            p.is_speaking(t0 + Duration::from_millis(110)),
            "released audio still plays"
        );
        assert!(!p.is_speaking(t0 + Duration::from_millis(200)));
    }
}
