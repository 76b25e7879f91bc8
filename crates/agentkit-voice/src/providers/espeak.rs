//! [`EspeakTts`]: offline text-to-speech with the `espeak-ng` program (Debian and Ubuntu
//! package `espeak-ng`, Homebrew `espeak-ng`).
//!
//! Each synthesis runs `espeak-ng --stdout --stdin -v <voice> -s <words per minute>` directly
//! (no shell), writes the text to its standard input and reads the WAV it writes to standard
//! output (22 050 Hz mono, [`OUTPUT_FORMAT`]), resampled to [`TtsOptions::format`]. The voice
//! is robotic but intelligible, it needs no network or key, and a short sentence takes a few
//! tens of milliseconds: good for development, tests and demos.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::{Error, Result};
use async_trait::async_trait;
use tokio::io::AsyncWrite;

use crate::audio::{AudioClip, AudioFormat};
use crate::tts::{self, TextToSpeech, TtsOptions, TtsStream};

/// The program looked for on `PATH`.
pub const PROGRAM: &str = "espeak-ng";
/// The environment variable that names the program (a path, or a name looked for on `PATH`)
/// instead.
pub const PROGRAM_ENV: &str = "ESPEAK_NG";
/// The voice used when the options name none.
pub const DEFAULT_VOICE: &str = "en-us";
/// The speaking rate at speed 1.0, in words per minute (espeak-ng's own default).
pub const DEFAULT_WORDS_PER_MINUTE: u32 = 175;
/// What espeak-ng writes: 22 050 Hz mono.
pub const OUTPUT_FORMAT: AudioFormat = AudioFormat::mono(22_050);
/// The longest a synthesis may run by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The rates espeak-ng accepts (words per minute); speeds outside are clamped to them.
const WPM_RANGE: (f32, f32) = (80.0, 450.0);

const INSTALL_HINT: &str = "install it (Debian/Ubuntu: `apt-get install espeak-ng`, macOS: \
                            `brew install espeak-ng`) or set ESPEAK_NG to the program's path";

/// Text-to-speech with the local `espeak-ng` program.
///
/// [`EspeakTts::find`] locates the program; the voice is [`TtsOptions::voice`], else the one
/// set with [`EspeakTts::with_voice`] ([`DEFAULT_VOICE`] by default), any name `espeak-ng
/// --voices` lists (`en-gb`, `fr`, `en-us+f3`); [`TtsOptions::speed`] scales
/// [`DEFAULT_WORDS_PER_MINUTE`] (clamped to the 80–450 espeak-ng accepts). Streaming
/// synthesises each context at its flush ([`tts::buffered_stream`]); a cancelled synthesis
/// kills its process.
///
/// ```no_run
/// # async fn demo() -> agentkit_core::Result<()> {
/// use agentkit_voice::providers::espeak::EspeakTts;
/// use agentkit_voice::{TextToSpeech, TtsOptions};
///
/// let tts = EspeakTts::find()?; // an InvalidConfig saying how to install it when missing
/// let clip = tts.synthesize("Your order has shipped.", &TtsOptions::default()).await?;
/// clip.write_wav("reply.wav")?; // 16 kHz mono, the options' default format
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct EspeakTts {
    program: Arc<Path>,
    voice: String,
    timeout: Duration,
}

impl EspeakTts {
    /// The program named by `ESPEAK_NG` (a path, or a name looked for on `PATH`), else
    /// `espeak-ng` on `PATH`. When it cannot be found: an [`Error::InvalidConfig`] that says
    /// how to install it.
    pub fn find() -> Result<Self> {
        match std::env::var_os(PROGRAM_ENV).filter(|v| !v.is_empty()) {
            Some(program) => Self::locate(PathBuf::from(program), Some(PROGRAM_ENV)),
            None => Self::locate(PathBuf::from(PROGRAM), None),
        }
    }

    /// The program at `program`: a path, or a bare name looked for on `PATH`. A program that
    /// does not exist (or is not executable) is an [`Error::InvalidConfig`] that says how to
    /// install it.
    pub fn with_program(program: impl Into<PathBuf>) -> Result<Self> {
        Self::locate(program.into(), None)
    }

    /// `program` found, or the error that says where it was looked for (`origin`: the
    /// variable that named it).
    fn locate(program: PathBuf, origin: Option<&str>) -> Result<Self> {
        let bare = program.components().count() == 1 && !program.is_absolute();
        let found = if bare {
            search_path(program.as_os_str())
        } else {
            is_executable(&program).then(|| program.clone())
        };
        let Some(found) = found else {
            let named = match origin {
                Some(var) => format!("`{}` (from {var})", program.display()),
                None => format!("`{}`", program.display()),
            };
            let where_ = if bare {
                format!("{named} was not found on PATH")
            } else {
                format!("{named} does not exist or is not an executable file")
            };
            return Err(Error::InvalidConfig(format!(
                "{PROGRAM}: {where_}; {INSTALL_HINT}"
            )));
        };
        Ok(Self {
            program: found.into(),
            voice: DEFAULT_VOICE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets the voice used when the options name none.
    pub fn with_voice(mut self, voice: impl Into<String>) -> Self {
        self.voice = voice.into();
        self
    }

    /// Sets the longest a synthesis may run (then it is killed and fails with
    /// [`Error::Timeout`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The program run.
    pub fn program(&self) -> &Path {
        &self.program
    }
}

fn search_path(name: &OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let mut file = name.to_os_string();
    file.push(std::env::consts::EXE_SUFFIX);
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(&file))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// A voice name is passed as an argument: refuse anything that could read as an option.
fn check_voice(voice: &str) -> Result<()> {
    let ok = !voice.is_empty()
        && !voice.starts_with('-')
        && voice.len() <= 64
        && voice
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '/'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{PROGRAM}: `{voice}` is not a voice name (see `espeak-ng --voices`)"
        )))
    }
}

fn words_per_minute(speed: Option<f32>) -> Result<u32> {
    let speed = speed.unwrap_or(1.0);
    if !speed.is_finite() || speed <= 0.0 {
        return Err(Error::InvalidInput(format!(
            "{PROGRAM}: speed {speed} must be a positive number"
        )));
    }
    let wpm = (DEFAULT_WORDS_PER_MINUTE as f32 * speed).clamp(WPM_RANGE.0, WPM_RANGE.1);
    Ok(wpm.round() as u32)
}

/// espeak-ng writes its WAV as a stream, before it knows the length: the RIFF and `data` sizes
/// are placeholders (`0x7FFFF000` or `0xFFFFFFFF`) that WAV readers reject. Sets them from the
/// bytes actually there (whole sample frames only).
fn fix_streamed_wav(bytes: &mut [u8]) {
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return;
    }
    let riff = u32::try_from(bytes.len() - 8).unwrap_or(u32::MAX);
    bytes[4..8].copy_from_slice(&riff.to_le_bytes());
    let mut block_align = 2usize;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let size = le32(bytes, at + 4) as usize;
        let body = at + 8;
        let available = bytes.len() - body;
        match &bytes[at..at + 4] {
            b"fmt " if available >= 14 => {
                block_align =
                    usize::from(u16::from_le_bytes([bytes[body + 12], bytes[body + 13]])).max(1);
            }
            b"data" => {
                if size > available {
                    let whole = available - available % block_align;
                    let whole = u32::try_from(whole).unwrap_or(u32::MAX);
                    bytes[at + 4..at + 8].copy_from_slice(&whole.to_le_bytes());
                }
                return;
            }
            _ => {}
        }
        at = body.saturating_add(size).saturating_add(size & 1);
    }
}

/// The clip in `bytes` (espeak-ng's standard output).
fn parse_output(mut bytes: Vec<u8>) -> Result<AudioClip> {
    fix_streamed_wav(&mut bytes);
    AudioClip::from_wav_bytes(&bytes).map_err(|e| {
        Error::MalformedResponse(format!(
            "{PROGRAM}: its output is not a WAV we can read: {e}"
        ))
    })
}

impl EspeakTts {
    async fn run(&self, text: &str, voice: &str, wpm: u32) -> Result<Vec<u8>> {
        let program = self.program.display();
        let mut child = tokio::process::Command::new(&*self.program)
            .arg("--stdout")
            .arg("--stdin")
            .arg("-v")
            .arg(voice)
            .arg("-s")
            .arg(wpm.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::Unavailable {
                message: format!("{PROGRAM}: cannot run `{program}`: {e}; {INSTALL_HINT}"),
                source: Some(Box::new(e)),
            })?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::Internal(format!("{PROGRAM}: no standard input")))?;
        // The text goes through standard input (not the command line, which other users of the
        // machine can read); written while the output is read, so neither pipe can fill up.
        let input = text.as_bytes().to_vec();
        let write = async move {
            let written = write_all(&mut stdin, &input).await;
            drop(stdin);
            written
        };
        let (written, output) = tokio::time::timeout(self.timeout, async {
            tokio::join!(write, child.wait_with_output())
        })
        .await
        .map_err(|_| {
            Error::Timeout(format!(
                "{PROGRAM}: no speech within {:?} (the process was killed)",
                self.timeout
            ))
        })?;
        let output = output.map_err(|e| Error::Unavailable {
            message: format!("{PROGRAM}: waiting for `{program}`: {e}"),
            source: Some(Box::new(e)),
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stderr = stderr.trim();
            let message = format!("{PROGRAM} failed ({}): {stderr}", output.status);
            return Err(if stderr.contains("voice") {
                Error::InvalidInput(message)
            } else {
                Error::Server {
                    status: None,
                    message,
                }
            });
        }
        written.map_err(|e| Error::Unavailable {
            message: format!("{PROGRAM}: writing the text to `{program}`: {e}"),
            source: Some(Box::new(e)),
        })?;
        Ok(output.stdout)
    }
}

/// Writes all of `buf` (without needing tokio's `io-util`).
async fn write_all<W: AsyncWrite + Unpin>(writer: &mut W, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut *writer).poll_write(cx, buf)).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

#[async_trait]
impl TextToSpeech for EspeakTts {
    fn name(&self) -> &str {
        PROGRAM
    }

    /// Speaks `text` into a clip of `options.format`. Blank text is an empty clip, without
    /// running the program; an unknown voice is an [`Error::InvalidInput`].
    async fn synthesize(&self, text: &str, options: &TtsOptions) -> Result<AudioClip> {
        if text.trim().is_empty() {
            return Ok(AudioClip::new(options.format));
        }
        let voice = options.voice.as_deref().unwrap_or(&self.voice);
        check_voice(voice)?;
        let wpm = words_per_minute(options.speed)?;
        let clip = parse_output(self.run(text, voice, wpm).await?)?.to_mono();
        clip.to_format(options.format)
    }

    /// A buffered session: each context is synthesised at its flush ([`tts::buffered_stream`]).
    async fn stream(&self, options: &TtsOptions) -> Result<TtsStream> {
        Ok(tts::buffered_stream(Arc::new(self.clone()), options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed_wav(samples: &[i16], declared: u32) -> Vec<u8> {
        let clip = AudioClip::from_samples(OUTPUT_FORMAT, samples.to_vec()).expect("clip");
        let mut bytes = clip.to_wav_bytes().expect("wav");
        bytes[4..8].copy_from_slice(&declared.to_le_bytes());
        bytes[40..44].copy_from_slice(&declared.to_le_bytes());
        bytes
    }

    #[test]
    fn streamed_wav_sizes_are_patched() {
        let samples = [1i16, -2, 3, -4, 5];
        for declared in [0x7FFF_F000, u32::MAX] {
            let bytes = streamed_wav(&samples, declared);
            assert!(AudioClip::from_wav_bytes(&bytes).is_err());
            let clip = parse_output(bytes).expect("patched");
            assert_eq!(clip.samples, samples);
            assert_eq!(clip.format, OUTPUT_FORMAT);
        }
        // A trailing half sample is dropped.
        let mut bytes = streamed_wav(&samples, u32::MAX);
        bytes.push(7);
        assert_eq!(parse_output(bytes).expect("patched").samples, samples);
        // A correct file is left alone; garbage stays an error.
        let good = AudioClip::from_samples(OUTPUT_FORMAT, samples.to_vec())
            .expect("clip")
            .to_wav_bytes()
            .expect("wav");
        assert_eq!(parse_output(good).expect("good").samples, samples);
        assert!(matches!(
            parse_output(b"RIFF\0\0\0\0WAVEjunk".to_vec()),
            Err(Error::MalformedResponse(_))
        ));
        assert!(parse_output(Vec::new()).is_err());
    }

    #[test]
    fn speed_maps_to_words_per_minute() {
        assert_eq!(words_per_minute(None).expect("wpm"), 175);
        assert_eq!(words_per_minute(Some(2.0)).expect("wpm"), 350);
        assert_eq!(words_per_minute(Some(0.1)).expect("wpm"), 80);
        assert_eq!(words_per_minute(Some(10.0)).expect("wpm"), 450);
        assert!(words_per_minute(Some(0.0)).is_err());
        assert!(words_per_minute(Some(f32::NAN)).is_err());
    }

    #[test]
    fn voices_cannot_pass_options() {
        for ok in ["en-us", "en-us+f3", "mb/mb-en1", "fr"] {
            check_voice(ok).expect(ok);
        }
        for bad in ["", "-s999", "en us", "en;rm", "--stdout"] {
            assert!(check_voice(bad).is_err(), "{bad}");
        }
    }
}
