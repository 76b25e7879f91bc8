//! Voice activity detection: an energy (RMS) detector with a four-state machine, dependency
//! free and deterministic.
//!
//! Each frame is *voiced* when its level is above both the absolute threshold and the tracked
//! noise floor plus a margin. Speech starts after `start` of (nearly) continuous voiced frames
//! and stops after `stop` of unvoiced ones:
//!
//! ```text
//!  quiet ──voiced──▶ starting ──voiced for `start`──▶ speaking ──unvoiced──▶ stopping
//!    ▲                  │ unvoiced                      ▲  voiced │            │
//!    └──────────────────┘                               └─────────┘            │
//!    └───────────────────────────── unvoiced for `stop` ───────────────────────┘
//! ```

use std::time::Duration;

use crate::audio::AudioFrame;

/// VAD settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct VadConfig {
    /// Frames quieter than this (dBFS) are never voiced.
    pub threshold_dbfs: f32,
    /// A voiced frame must also be this far (dB) above the noise floor.
    pub margin_db: f32,
    /// Voiced audio needed before speech starts.
    pub start: Duration,
    /// Unvoiced audio needed before speech stops.
    pub stop: Duration,
}

impl Default for VadConfig {
    /// −45 dBFS, 10 dB over the noise floor, 200 ms to start, 300 ms to stop.
    fn default() -> Self {
        Self {
            threshold_dbfs: -45.0,
            margin_db: 10.0,
            start: Duration::from_millis(200),
            stop: Duration::from_millis(300),
        }
    }
}

impl VadConfig {
    /// Sets how long speech must last to start.
    pub fn with_start(mut self, start: Duration) -> Self {
        self.start = start;
        self
    }

    /// Sets how long a pause must last to stop.
    pub fn with_stop(mut self, stop: Duration) -> Self {
        self.stop = stop;
        self
    }

    /// Sets the absolute threshold.
    pub fn with_threshold_dbfs(mut self, threshold: f32) -> Self {
        self.threshold_dbfs = threshold;
        self
    }
}

/// Where the detector is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadState {
    /// No speech.
    Quiet,
    /// Voiced frames, not yet long enough to be speech.
    Starting,
    /// Speech.
    Speaking,
    /// A pause in speech, not yet long enough to end it.
    Stopping,
}

/// A transition the detector reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech started; `ago` is how long before the end of this frame it began.
    SpeechStarted {
        /// Audio since the first voiced frame.
        ago: Duration,
    },
    /// Speech stopped; `ago` is how long before the end of this frame the last voiced frame
    /// ended (the `stop` hangover).
    SpeechStopped {
        /// Audio since the last voiced frame.
        ago: Duration,
    },
}

/// The energy VAD.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    config: VadConfig,
    state: VadState,
    /// Time in the current candidate state (`Starting`/`Stopping`).
    run: Duration,
    /// Noise floor estimate, dBFS.
    floor: f32,
}

impl EnergyVad {
    /// A detector.
    pub fn new(config: VadConfig) -> Self {
        Self {
            config,
            state: VadState::Quiet,
            run: Duration::ZERO,
            floor: -70.0,
        }
    }

    /// The state.
    pub fn state(&self) -> VadState {
        self.state
    }

    /// Whether the detector is in speech (speaking or in a pause not yet long enough).
    pub fn in_speech(&self) -> bool {
        matches!(self.state, VadState::Speaking | VadState::Stopping)
    }

    /// Back to quiet.
    pub fn reset(&mut self) {
        self.state = VadState::Quiet;
        self.run = Duration::ZERO;
    }

    /// Whether a frame at `level` dBFS is voiced.
    fn voiced(&self, level: f32) -> bool {
        level >= self.config.threshold_dbfs && level >= self.floor + self.config.margin_db
    }

    /// Feeds one frame; returns a transition if it made one.
    pub fn process(&mut self, frame: &AudioFrame) -> Option<VadEvent> {
        let level = frame.level_dbfs();
        let len = frame.duration();
        let voiced = self.voiced(level);
        // The floor follows the level quickly down and slowly up; very slowly during voiced
        // frames, so a steady hum becomes the floor within seconds while speech, which has
        // dips between words, keeps well above it.
        let level_or_floor = if level.is_finite() { level } else { -90.0 };
        let rate = if level_or_floor < self.floor {
            0.5
        } else if voiced {
            0.005
        } else {
            0.05
        };
        self.floor += (level_or_floor - self.floor) * rate;
        match (self.state, voiced) {
            (VadState::Quiet, true) => {
                self.state = VadState::Starting;
                self.run = len;
                self.started_if_long_enough()
            }
            (VadState::Quiet, false) => None,
            (VadState::Starting, true) => {
                self.run += len;
                self.started_if_long_enough()
            }
            (VadState::Starting, false) => {
                self.state = VadState::Quiet;
                self.run = Duration::ZERO;
                None
            }
            (VadState::Speaking, true) => None,
            (VadState::Speaking, false) => {
                self.state = VadState::Stopping;
                self.run = len;
                self.stopped_if_long_enough()
            }
            (VadState::Stopping, true) => {
                self.state = VadState::Speaking;
                self.run = Duration::ZERO;
                None
            }
            (VadState::Stopping, false) => {
                self.run += len;
                self.stopped_if_long_enough()
            }
        }
    }

    fn started_if_long_enough(&mut self) -> Option<VadEvent> {
        (self.run >= self.config.start).then(|| {
            self.state = VadState::Speaking;
            let ago = std::mem::take(&mut self.run);
            VadEvent::SpeechStarted { ago }
        })
    }

    fn stopped_if_long_enough(&mut self) -> Option<VadEvent> {
        (self.run >= self.config.stop).then(|| {
            self.state = VadState::Quiet;
            let ago = std::mem::take(&mut self.run);
            VadEvent::SpeechStopped { ago }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{AudioFormat, FRAME};

    fn tone(level: i16) -> AudioFrame {
        let n = AudioFormat::SPEECH.samples_in(FRAME);
        let samples: Vec<i16> = (0..n)
            .map(|i| if i % 2 == 0 { level } else { -level })
            .collect();
        AudioFrame::new(AudioFormat::SPEECH, samples).expect("frame")
    }

    fn run(vad: &mut EnergyVad, frame: &AudioFrame, n: usize) -> Vec<(usize, VadEvent)> {
        (0..n)
            .filter_map(|i| vad.process(frame).map(|e| (i, e)))
            .collect()
    }

    #[test]
    fn four_states_with_start_and_stop_delays() {
        let mut vad = EnergyVad::new(VadConfig::default());
        let quiet = tone(30); // about -61 dBFS
        let loud = tone(3000); // about -21 dBFS
        assert!(run(&mut vad, &quiet, 20).is_empty());
        assert_eq!(vad.state(), VadState::Quiet);
        // 200 ms of speech = 10 frames: the 10th starts it.
        let events = run(&mut vad, &loud, 12);
        assert_eq!(
            events,
            vec![(
                9,
                VadEvent::SpeechStarted {
                    ago: Duration::from_millis(200)
                }
            )]
        );
        assert_eq!(vad.state(), VadState::Speaking);
        // A 100 ms pause does not stop it.
        assert!(run(&mut vad, &quiet, 5).is_empty());
        assert_eq!(vad.state(), VadState::Stopping);
        assert!(run(&mut vad, &loud, 3).is_empty());
        assert_eq!(vad.state(), VadState::Speaking);
        // 300 ms of quiet = 15 frames does.
        let events = run(&mut vad, &quiet, 20);
        assert_eq!(
            events,
            vec![(
                14,
                VadEvent::SpeechStopped {
                    ago: Duration::from_millis(300)
                }
            )]
        );
        assert_eq!(vad.state(), VadState::Quiet);
    }

    #[test]
    fn a_short_noise_is_not_speech() {
        let mut vad = EnergyVad::new(VadConfig::default());
        let quiet = tone(30);
        let loud = tone(3000);
        run(&mut vad, &quiet, 10);
        assert!(run(&mut vad, &loud, 5).is_empty());
        assert_eq!(vad.state(), VadState::Starting);
        assert!(run(&mut vad, &quiet, 1).is_empty());
        assert_eq!(vad.state(), VadState::Quiet);
    }

    #[test]
    fn a_steady_background_raises_the_floor() {
        // A hum at -40 dBFS is above the absolute threshold but becomes the floor.
        let mut vad = EnergyVad::new(VadConfig::default());
        let hum = tone(330);
        let events = run(&mut vad, &hum, 400);
        // It may start once, before the floor has adapted, but then it stops for good.
        assert!(events.len() <= 2, "{events:?}");
        assert_eq!(vad.state(), VadState::Quiet);
        assert!(run(&mut vad, &hum, 100).is_empty());
        // Speech well above the hum is still heard.
        assert!(!run(&mut vad, &tone(6000), 12).is_empty());
    }
}
