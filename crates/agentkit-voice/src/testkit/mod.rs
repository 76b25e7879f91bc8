//! Offline test parts (feature `testkit`): scripted speech-to-text and text-to-speech, test
//! audio, and the conformance suites every speech provider runs ([`conformance`]).

pub mod conformance;
mod scripted;

pub use scripted::{ScriptedStt, ScriptedTts};

use std::time::Duration;

use crate::audio::{AudioClip, AudioFormat, AudioFrame, FRAME};

/// `duration` of a voiced test signal (a 200 Hz square wave at about −20 dBFS, which every
/// VAD setting hears as speech) in 20 ms frames of `format`.
pub fn speech(format: AudioFormat, duration: Duration) -> Vec<AudioFrame> {
    tone(format, duration, 3000).frames(FRAME)
}

/// `duration` of silence in 20 ms frames of `format`.
pub fn silence(format: AudioFormat, duration: Duration) -> Vec<AudioFrame> {
    AudioClip::from_samples(format, vec![0; format.samples_in(duration)])
        .expect("a valid format")
        .frames(FRAME)
}

/// A square wave of `amplitude` at 200 Hz, `duration` long.
pub fn tone(format: AudioFormat, duration: Duration, amplitude: i16) -> AudioClip {
    let n = format.samples_in(duration);
    let channels = usize::from(format.channels.max(1));
    let half_period = (format.sample_rate / 400).max(1) as usize;
    let samples = (0..n)
        .map(|i| {
            if (i / channels / half_period).is_multiple_of(2) {
                amplitude
            } else {
                -amplitude
            }
        })
        .collect();
    AudioClip::from_samples(format, samples).expect("a valid format")
}
