//! Audio: 16-bit PCM frames and clips, WAV files (`hound`) and resampling (`rubato`).
//!
//! Samples are signed 16-bit, interleaved when there is more than one channel. The pipeline's
//! default is 16 kHz mono in 20 ms frames ([`AudioFormat::SPEECH`], [`FRAME`]).

use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::{Error, Result};

/// The pipeline's default frame length.
pub const FRAME: Duration = Duration::from_millis(20);

/// Sample rate and channel count of PCM16 audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct AudioFormat {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

impl AudioFormat {
    /// 16 kHz mono: what speech-to-text expects by default.
    pub const SPEECH: Self = Self::mono(16_000);
    /// 8 kHz mono: telephony (µ-law, Twilio media streams).
    pub const TELEPHONY: Self = Self::mono(8_000);

    /// Mono at `sample_rate`.
    pub const fn mono(sample_rate: u32) -> Self {
        Self {
            sample_rate,
            channels: 1,
        }
    }

    /// Samples (all channels) in `duration`, rounded down to whole frames of all channels.
    pub fn samples_in(&self, duration: Duration) -> usize {
        let per_channel =
            (u128::from(self.sample_rate) * duration.as_nanos() / 1_000_000_000) as usize;
        per_channel * usize::from(self.channels)
    }

    /// How long `samples` (all channels) last.
    pub fn duration_of(&self, samples: usize) -> Duration {
        if self.sample_rate == 0 || self.channels == 0 {
            return Duration::ZERO;
        }
        let per_channel = samples as u128 / u128::from(self.channels);
        Duration::from_nanos((per_channel * 1_000_000_000 / u128::from(self.sample_rate)) as u64)
    }

    fn check(&self) -> Result<()> {
        if self.sample_rate == 0 || self.channels == 0 {
            return Err(Error::InvalidInput(format!(
                "audio format {} Hz × {} channels: both must be at least 1",
                self.sample_rate, self.channels
            )));
        }
        Ok(())
    }
}

impl std::fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.channels {
            1 => write!(f, "{} Hz mono", self.sample_rate),
            n => write!(f, "{} Hz × {n}", self.sample_rate),
        }
    }
}

/// A short piece of PCM16 audio moving through the pipeline (cheap to clone: the samples are
/// shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    format: AudioFormat,
    samples: Arc<[i16]>,
}

impl AudioFrame {
    /// A frame of interleaved `samples`; fails on an empty format or a sample count that is
    /// not a multiple of the channels.
    pub fn new(format: AudioFormat, samples: impl Into<Arc<[i16]>>) -> Result<Self> {
        format.check()?;
        let samples = samples.into();
        if !samples.len().is_multiple_of(usize::from(format.channels)) {
            return Err(Error::InvalidInput(format!(
                "{} samples do not make whole frames of {} channels",
                samples.len(),
                format.channels
            )));
        }
        Ok(Self { format, samples })
    }

    /// A frame from little-endian PCM16 bytes (what WebSockets and most vendors carry); an
    /// odd byte count is an [`Error::InvalidInput`].
    pub fn from_le_bytes(format: AudioFormat, bytes: &[u8]) -> Result<Self> {
        if !bytes.len().is_multiple_of(2) {
            return Err(Error::InvalidInput(format!(
                "{} bytes of PCM16 audio: the count must be even",
                bytes.len()
            )));
        }
        let samples: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        Self::new(format, samples)
    }

    /// `duration` of silence.
    pub fn silence(format: AudioFormat, duration: Duration) -> Self {
        Self {
            format,
            samples: vec![0; format.samples_in(duration)].into(),
        }
    }

    /// The format.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// The interleaved samples.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// How long the frame lasts.
    pub fn duration(&self) -> Duration {
        self.format.duration_of(self.samples.len())
    }

    /// Whether the frame holds no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples as little-endian bytes.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    /// Root-mean-square level in dBFS (0 is full scale; silence is `f32::NEG_INFINITY`).
    pub fn level_dbfs(&self) -> f32 {
        level_dbfs(&self.samples)
    }
}

/// Root-mean-square level of samples in dBFS.
pub fn level_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return f32::NEG_INFINITY;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len() as f64).sqrt();
    if rms == 0.0 {
        return f32::NEG_INFINITY;
    }
    (20.0 * (rms / 32768.0).log10()) as f32
}

/// A whole recording or synthesis: PCM16 samples of one format (the default: empty, 16 kHz
/// mono).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioClip {
    /// The format.
    pub format: AudioFormat,
    /// Interleaved samples.
    pub samples: Vec<i16>,
}

impl Default for AudioClip {
    fn default() -> Self {
        Self::new(AudioFormat::SPEECH)
    }
}

impl AudioClip {
    /// An empty clip of `format`.
    pub fn new(format: AudioFormat) -> Self {
        Self {
            format,
            samples: Vec::new(),
        }
    }

    /// A clip of `samples`.
    pub fn from_samples(format: AudioFormat, samples: Vec<i16>) -> Result<Self> {
        format.check()?;
        if !samples.len().is_multiple_of(usize::from(format.channels)) {
            return Err(Error::InvalidInput(
                "the samples do not make whole frames of the channels".into(),
            ));
        }
        Ok(Self { format, samples })
    }

    /// The format.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// How long the clip lasts.
    pub fn duration(&self) -> Duration {
        self.format().duration_of(self.samples.len())
    }

    /// Appends a frame; a frame of another format is an [`Error::InvalidInput`].
    pub fn push(&mut self, frame: &AudioFrame) -> Result<()> {
        if self.samples.is_empty() {
            self.format = frame.format();
        } else if self.format != frame.format() {
            {
                return Err(Error::InvalidInput(format!(
                    "a {} frame cannot be added to a {} clip",
                    frame.format(),
                    self.format()
                )));
            }
        }
        self.samples.extend_from_slice(frame.samples());
        Ok(())
    }

    /// The clip in frames of `length` (the last one may be shorter).
    pub fn frames(&self, length: Duration) -> Vec<AudioFrame> {
        let format = self.format();
        let n = format.samples_in(length).max(usize::from(format.channels));
        self.samples
            .chunks(n)
            .map(|c| AudioFrame {
                format,
                samples: c.into(),
            })
            .collect()
    }

    /// The whole clip as one frame.
    pub fn to_frame(&self) -> AudioFrame {
        AudioFrame {
            format: self.format(),
            samples: self.samples.as_slice().into(),
        }
    }

    /// Reads a WAV file: 8/16/24/32-bit integer or 32-bit float PCM, converted to 16-bit.
    pub fn read_wav(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let reader = hound::WavReader::open(path)
            .map_err(|e| wav_error(&format!("reading {}", path.display()), e))?;
        Self::from_wav_reader(reader)
    }

    /// Reads WAV bytes (see [`AudioClip::read_wav`]).
    pub fn from_wav_bytes(bytes: &[u8]) -> Result<Self> {
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
            .map_err(|e| wav_error("reading WAV bytes", e))?;
        Self::from_wav_reader(reader)
    }

    fn from_wav_reader<R: Read>(mut reader: hound::WavReader<R>) -> Result<Self> {
        let spec = reader.spec();
        let format = AudioFormat {
            sample_rate: spec.sample_rate,
            channels: spec.channels,
        };
        let samples: std::result::Result<Vec<i16>, hound::Error> =
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Int, 16) => reader.samples::<i16>().collect(),
                (hound::SampleFormat::Int, bits) if bits <= 32 => {
                    let shift = i32::from(bits) - 16;
                    reader
                        .samples::<i32>()
                        .map(|s| {
                            s.map(|v| {
                                if shift >= 0 {
                                    (v >> shift) as i16
                                } else {
                                    (v << -shift) as i16
                                }
                            })
                        })
                        .collect()
                }
                (hound::SampleFormat::Float, 32) => {
                    reader.samples::<f32>().map(|s| s.map(f32_to_i16)).collect()
                }
                (f, bits) => {
                    return Err(Error::InvalidInput(format!(
                        "WAV with {bits}-bit {f:?} samples is not supported"
                    )));
                }
            };
        let samples = samples.map_err(|e| wav_error("reading WAV samples", e))?;
        Self::from_samples(format, samples)
    }

    /// Writes the clip as a 16-bit PCM WAV file.
    pub fn write_wav(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let file = std::fs::File::create(path)
            .map_err(|e| Error::InvalidInput(format!("writing {}: {e}", path.display())))?;
        self.write_wav_to(std::io::BufWriter::new(file))
    }

    /// The clip as WAV bytes.
    pub fn to_wav_bytes(&self) -> Result<Vec<u8>> {
        let mut out = std::io::Cursor::new(Vec::new());
        self.write_wav_to(&mut out)?;
        Ok(out.into_inner())
    }

    fn write_wav_to<W: Write + Seek>(&self, writer: W) -> Result<()> {
        let format = self.format();
        let spec = hound::WavSpec {
            channels: format.channels,
            sample_rate: format.sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(writer, spec).map_err(|e| wav_error("writing WAV", e))?;
        let mut samples = w.get_i16_writer(self.samples.len() as u32);
        for &s in &self.samples {
            samples.write_sample(s);
        }
        samples.flush().map_err(|e| wav_error("writing WAV", e))?;
        w.finalize().map_err(|e| wav_error("writing WAV", e))
    }

    /// The clip down-mixed to mono (channels averaged).
    pub fn to_mono(&self) -> Self {
        let format = self.format();
        Self {
            format: AudioFormat::mono(format.sample_rate),
            samples: remix(&self.samples, format.channels, 1),
        }
    }

    /// The clip in `format`: resampled to its rate, then given its channels
    /// ([`AudioClip::to_channels`]); the clip as it is when it already has that format.
    pub fn to_format(&self, format: AudioFormat) -> Result<Self> {
        if self.format == format {
            return Ok(self.clone());
        }
        self.resample(format.sample_rate)?
            .to_channels(format.channels)
    }

    /// The clip with `channels` channels: the audio, mixed down to mono when it has more than
    /// one channel, copied into every channel (mono into stereo: `[1, 2]` becomes
    /// `[1, 1, 2, 2]`). The same channel count is the clip as it is; no channel (`0`) is an
    /// [`Error::InvalidInput`].
    pub fn to_channels(&self, channels: u16) -> Result<Self> {
        let format = self.format();
        Self::from_samples(
            AudioFormat {
                sample_rate: format.sample_rate,
                channels,
            },
            remix(&self.samples, format.channels, channels),
        )
    }

    /// The clip at another sample rate (band-limited FFT resampling, `rubato`).
    pub fn resample(&self, sample_rate: u32) -> Result<Self> {
        let format = self.format();
        if sample_rate == format.sample_rate {
            return Ok(self.clone());
        }
        AudioFormat::mono(sample_rate).check()?;
        let mut resampler = Resampler::new(format, sample_rate)?;
        let mut out = resampler.process(&self.samples)?;
        out.extend(resampler.finish()?);
        Ok(Self {
            format: AudioFormat {
                sample_rate,
                channels: format.channels,
            },
            samples: out,
        })
    }
}

fn f32_to_i16(v: f32) -> i16 {
    (v.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// Interleaved samples of `from` channels as `to` channels: averaged to mono, then copied
/// into each channel (the samples as they are when the counts are the same).
pub(crate) fn remix(samples: &[i16], from: u16, to: u16) -> Vec<i16> {
    if from == to {
        return samples.to_vec();
    }
    let (from, to) = (usize::from(from), usize::from(to));
    let mut out = Vec::with_capacity(samples.len() / from * to);
    for frame in samples.chunks_exact(from) {
        let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
        let mono = (sum / from as i32) as i16;
        out.extend(std::iter::repeat_n(mono, to));
    }
    out
}

fn wav_error(what: &str, e: hound::Error) -> Error {
    match e {
        hound::Error::IoError(io) => Error::InvalidInput(format!("{what}: {io}")),
        other => Error::InvalidInput(format!("{what}: not a WAV file we can read ({other})")),
    }
}

/// Streaming sample-rate conversion of interleaved PCM16 (`rubato`'s FFT resampler): feed
/// samples as they come, then [`Resampler::finish`] for the tail.
pub struct Resampler {
    inner: rubato::FftFixedIn<f32>,
    channels: usize,
    /// De-interleaved input waiting for a whole chunk.
    pending: Vec<Vec<f32>>,
    /// Output samples still to drop (the resampler's delay).
    delay: usize,
    ratio: f64,
    fed: usize,
    produced: usize,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("channels", &self.channels)
            .field("ratio", &self.ratio)
            .finish()
    }
}

impl Resampler {
    /// Converts `from` to `to_rate` (same channels).
    pub fn new(from: AudioFormat, to_rate: u32) -> Result<Self> {
        from.check()?;
        AudioFormat::mono(to_rate).check()?;
        let channels = usize::from(from.channels);
        // 10 ms chunks keep the added latency small.
        let chunk = (from.sample_rate as usize / 100).max(16);
        let inner = rubato::FftFixedIn::<f32>::new(
            from.sample_rate as usize,
            to_rate as usize,
            chunk,
            1,
            channels,
        )
        .map_err(|e| Error::InvalidInput(format!("resampler: {e}")))?;
        use rubato::Resampler as _;
        let delay = inner.output_delay();
        Ok(Self {
            inner,
            channels,
            pending: vec![Vec::new(); channels],
            delay,
            ratio: f64::from(to_rate) / f64::from(from.sample_rate),
            fed: 0,
            produced: 0,
        })
    }

    /// Resamples interleaved `samples`, returning what is ready.
    pub fn process(&mut self, samples: &[i16]) -> Result<Vec<i16>> {
        use rubato::Resampler as _;
        for frame in samples.chunks_exact(self.channels) {
            for (c, &s) in frame.iter().enumerate() {
                self.pending[c].push(f32::from(s) / 32768.0);
            }
        }
        self.fed += samples.len() / self.channels;
        let mut out = Vec::new();
        loop {
            let need = self.inner.input_frames_next();
            if self.pending[0].len() < need {
                break;
            }
            let chunk: Vec<Vec<f32>> = self
                .pending
                .iter_mut()
                .map(|p| p.drain(..need).collect())
                .collect();
            self.run(&chunk, &mut out)?;
        }
        Ok(out)
    }

    /// Flushes the tail: the output then holds as many samples as the input's duration at the
    /// new rate.
    pub fn finish(&mut self) -> Result<Vec<i16>> {
        use rubato::Resampler as _;
        let expected = (self.fed as f64 * self.ratio).round() as usize;
        let mut out = Vec::new();
        // Zeros push the tail (and the resampler's delay) out.
        let mut rounds = 0;
        while self.produced < expected && rounds < 64 {
            rounds += 1;
            let need = self.inner.input_frames_next();
            let chunk: Vec<Vec<f32>> = self
                .pending
                .iter_mut()
                .map(|p| {
                    let mut c: Vec<f32> = std::mem::take(p);
                    c.resize(need, 0.0);
                    c
                })
                .collect();
            self.run(&chunk, &mut out)?;
        }
        let extra = self.produced.saturating_sub(expected);
        out.truncate(out.len() - (extra * self.channels).min(out.len()));
        self.produced -= extra;
        Ok(out)
    }

    /// Resamples one whole chunk (per channel) and appends the output, past the delay, to `out`.
    fn run(&mut self, chunk: &[Vec<f32>], out: &mut Vec<i16>) -> Result<()> {
        use rubato::Resampler as _;
        let res = self
            .inner
            .process(chunk, None)
            .map_err(|e| Error::InvalidInput(format!("resampler: {e}")))?;
        let n = res[0].len();
        let skip = self.delay.min(n);
        self.delay -= skip;
        for i in skip..n {
            for ch in &res {
                out.push(f32_to_i16(ch[i]));
            }
        }
        self.produced += n - skip;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, secs: f32) -> AudioClip {
        let n = (rate as f32 * secs) as usize;
        let samples = (0..n)
            .map(|i| ((i as f32 / rate as f32 * hz * std::f32::consts::TAU).sin() * 8000.0) as i16)
            .collect();
        AudioClip::from_samples(AudioFormat::mono(rate), samples).expect("clip")
    }

    #[test]
    fn to_format_changes_rate_and_channels() {
        let clip = tone(16_000, 440.0, 0.5);
        let stereo = AudioFormat {
            sample_rate: 8_000,
            channels: 2,
        };
        let out = clip.to_format(stereo).expect("convert");
        assert_eq!(out.format(), stereo);
        assert_eq!(out.duration(), clip.duration());
        assert!(out.samples.chunks_exact(2).all(|f| f[0] == f[1]));
        assert_eq!(out.to_format(stereo).expect("same"), out);
    }

    #[test]
    fn wav_round_trips() {
        let clip = tone(16_000, 440.0, 0.25);
        let bytes = clip.to_wav_bytes().expect("wav");
        assert_eq!(AudioClip::from_wav_bytes(&bytes).expect("read"), clip);
        assert!(AudioClip::from_wav_bytes(b"RIFF not really").is_err());
    }

    #[test]
    fn resampling_keeps_duration_and_pitch() {
        let clip = tone(22_050, 440.0, 1.0);
        let out = clip.resample(16_000).expect("resample");
        assert_eq!(out.samples.len(), 16_000);
        // Zero crossings of a 440 Hz tone: about 880 per second at any rate.
        let crossings = out
            .samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((860..=900).contains(&crossings), "{crossings}");
        // The level is kept (no delay-induced silence at the start).
        assert!(out.to_frame().level_dbfs() > clip.to_frame().level_dbfs() - 1.0);
        assert!(level_dbfs(&out.samples[..400]) > -20.0);
    }

    #[test]
    fn channels_are_copied_and_mixed() {
        let mono = AudioClip::from_samples(AudioFormat::mono(16_000), vec![1, 2]).expect("clip");
        let stereo = mono.to_channels(2).expect("stereo");
        assert_eq!(stereo.samples, vec![1, 1, 2, 2]);
        assert_eq!(
            stereo.format,
            AudioFormat {
                sample_rate: 16_000,
                channels: 2
            }
        );
        assert_eq!(stereo.duration(), mono.duration());
        assert_eq!(mono.to_channels(1).expect("mono"), mono);
        let mixed = AudioClip::from_samples(stereo.format, vec![100, 300, -10, -20])
            .expect("clip")
            .to_channels(3)
            .expect("three");
        assert_eq!(mixed.samples, vec![200, 200, 200, -15, -15, -15]);
        assert_eq!(stereo.to_mono(), mono);
        assert!(mono.to_channels(0).is_err());
    }

    #[test]
    fn frames_and_levels() {
        let clip = tone(16_000, 300.0, 0.1);
        let frames = clip.frames(FRAME);
        assert_eq!(frames.len(), 5);
        assert!(frames.iter().all(|f| f.duration() == FRAME));
        assert_eq!(
            AudioFrame::silence(AudioFormat::SPEECH, FRAME).level_dbfs(),
            f32::NEG_INFINITY
        );
        assert!(AudioFrame::from_le_bytes(AudioFormat::SPEECH, &[0, 1, 2]).is_err());
        assert!(
            AudioFrame::new(
                AudioFormat {
                    sample_rate: 16_000,
                    channels: 2
                },
                vec![1i16; 3]
            )
            .is_err()
        );
    }
}
