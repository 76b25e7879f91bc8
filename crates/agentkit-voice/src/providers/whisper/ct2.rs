//! CTranslate2's `model.bin` (the format faster-whisper uses), read without CTranslate2, and
//! its Whisper variables renamed to the Hugging Face names candle's Whisper model loads.
//!
//! The file is little-endian: `u32 version`, `str spec`, `u32 revision`, `u32 count`, then
//! `count` variables (`str name`, `u8 rank`, `u32 dims[rank]`, `u8 dtype`, `u32 nbytes`, the
//! data), then `u32 count` and that many alias pairs (`str alias`, `str target`). A `str` is a
//! `u16` length and that many bytes, the last a NUL. Every read is bounds-checked: a truncated
//! or corrupt file is a [`FormatError`], never a panic.

use std::collections::HashMap;
use std::fmt;

use candle_core::{Device, Tensor};

/// The oldest and newest `model.bin` versions read.
const VERSIONS: std::ops::RangeInclusive<u32> = 5..=6;
/// The spec a Whisper model declares.
pub(crate) const WHISPER_SPEC: &str = "WhisperSpec";
/// No tensor has more dimensions than this.
const MAX_RANK: u8 = 8;

/// Why a `model.bin` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatError(pub(crate) String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type Parsed<T> = std::result::Result<T, FormatError>;

fn bad<T>(message: impl Into<String>) -> Parsed<T> {
    Err(FormatError(message.into()))
}

/// A variable's element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElementType {
    F32,
    I8,
    I16,
    I32,
    F16,
}

impl ElementType {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// One variable: its shape, type and bytes (borrowed from the file).
#[derive(Debug, Clone)]
pub(crate) struct Variable<'a> {
    pub(crate) dims: Vec<usize>,
    pub(crate) dtype: ElementType,
    pub(crate) data: &'a [u8],
}

impl Variable<'_> {
    /// The values as `f32` (float variables only: quantized weights are refused).
    pub(crate) fn to_f32(&self, name: &str) -> Parsed<Vec<f32>> {
        match self.dtype {
            ElementType::F32 => Ok(self
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()),
            ElementType::F16 => Ok(self
                .data
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect()),
            other => bad(format!(
                "{name} is {other:?}: only float16 and float32 models are supported (convert \
                 with `--quantization float16`)"
            )),
        }
    }

    /// The value of a scalar integer variable (such as `encoder/num_heads`).
    pub(crate) fn to_usize(&self) -> Option<usize> {
        let d = self.data;
        let value: i64 = match self.dtype {
            ElementType::I8 => i64::from(i8::from_le_bytes([*d.first()?])),
            ElementType::I16 => i64::from(i16::from_le_bytes([*d.first()?, *d.get(1)?])),
            ElementType::I32 => i64::from(i32::from_le_bytes(d.get(..4)?.try_into().ok()?)),
            ElementType::F32 | ElementType::F16 => return None,
        };
        usize::try_from(value).ok()
    }
}

/// IEEE half to single precision, exactly.
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exponent = u32::from((h >> 10) & 0x1f);
    let mantissa = u32::from(h & 0x3ff);
    match exponent {
        0 => {
            // Zero or subnormal: mantissa × 2⁻²⁴.
            let magnitude = mantissa as f32 / 16_777_216.0;
            if sign == 0 { magnitude } else { -magnitude }
        }
        31 => f32::from_bits(sign | 0x7f80_0000 | (mantissa << 13)),
        _ => f32::from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13)),
    }
}

/// A parsed `model.bin`.
#[derive(Debug)]
pub(crate) struct Ct2Model<'a> {
    pub(crate) spec: String,
    pub(crate) variables: HashMap<String, Variable<'a>>,
    pub(crate) aliases: HashMap<String, String>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Parsed<&'a [u8]> {
        match self
            .at
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.at..end))
        {
            Some(slice) => {
                self.at += n;
                Ok(slice)
            }
            None => bad(format!(
                "truncated: {what} needs {n} bytes at offset {}, the file has {}",
                self.at,
                self.bytes.len()
            )),
        }
    }

    fn u8(&mut self, what: &str) -> Parsed<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Parsed<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Parsed<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Parsed<String> {
        let n = usize::from(self.u16(what)?);
        let raw = self.take(n, what)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => bad(format!("{what} at offset {} is not UTF-8", self.at - n)),
        }
    }
}

/// Parses `bytes`, the whole `model.bin`.
pub(crate) fn parse(bytes: &[u8]) -> Parsed<Ct2Model<'_>> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u32("the version")?;
    if !VERSIONS.contains(&version) {
        return bad(format!(
            "version {version} is not a CTranslate2 model version this reader knows ({}–{})",
            VERSIONS.start(),
            VERSIONS.end()
        ));
    }
    let spec = r.string("the spec name")?;
    let _revision = r.u32("the spec revision")?;
    let count = r.u32("the variable count")?;
    let mut variables = HashMap::new();
    for index in 0..count {
        let name = r.string(&format!("variable {index}'s name"))?;
        let rank = r.u8(&format!("{name}'s rank"))?;
        if rank > MAX_RANK {
            return bad(format!("{name} has rank {rank}"));
        }
        let mut dims = Vec::with_capacity(usize::from(rank));
        for _ in 0..rank {
            dims.push(r.u32(&format!("{name}'s shape"))? as usize);
        }
        let code = r.u8(&format!("{name}'s type"))?;
        let Some(dtype) = ElementType::from_code(code) else {
            return bad(format!("{name} has unknown type code {code}"));
        };
        let nbytes = r.u32(&format!("{name}'s size"))? as usize;
        let expected = dims
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
        if expected != Some(nbytes) {
            return bad(format!(
                "{name}: {nbytes} bytes do not hold a {dims:?} {dtype:?} tensor"
            ));
        }
        let data = r.take(nbytes, &format!("{name}'s data"))?;
        if variables
            .insert(name.clone(), Variable { dims, dtype, data })
            .is_some()
        {
            return bad(format!("{name} appears twice"));
        }
    }
    let mut aliases = HashMap::new();
    if r.at < bytes.len() {
        let count = r.u32("the alias count")?;
        for _ in 0..count {
            let alias = r.string("an alias")?;
            let target = r.string(&format!("{alias}'s target"))?;
            aliases.insert(alias, target);
        }
    }
    Ok(Ct2Model {
        spec,
        variables,
        aliases,
    })
}

/// The sizes of a Whisper model, read from its tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sizes {
    pub(crate) d_model: usize,
    pub(crate) vocab: usize,
    pub(crate) mel_bins: usize,
    pub(crate) encoder_layers: usize,
    pub(crate) decoder_layers: usize,
    pub(crate) encoder_heads: usize,
    pub(crate) decoder_heads: usize,
    pub(crate) source_positions: usize,
    pub(crate) target_positions: usize,
}

impl Ct2Model<'_> {
    fn get(&self, name: &str) -> Parsed<&Variable<'_>> {
        let resolved = self.aliases.get(name).map_or(name, String::as_str);
        match self.variables.get(resolved) {
            Some(v) => Ok(v),
            None => bad(format!("the variable {name} is missing")),
        }
    }

    fn dim(&self, name: &str, axis: usize) -> Parsed<usize> {
        match self.get(name)?.dims.get(axis) {
            Some(&d) if d > 0 => Ok(d),
            _ => bad(format!("{name} has no dimension {axis}")),
        }
    }

    fn layers(&self, side: &str) -> usize {
        (0..)
            .take_while(|i| {
                self.variables
                    .contains_key(&format!("{side}/layer_{i}/ffn/linear_0/weight"))
            })
            .count()
    }

    fn heads(&self, side: &str, d_model: usize) -> usize {
        // Whisper's heads are 64 wide at every size; older conversions omit the count.
        self.variables
            .get(&format!("{side}/num_heads"))
            .and_then(Variable::to_usize)
            .filter(|&h| h > 0)
            .unwrap_or(d_model / 64)
    }

    /// The model's sizes; an error when this is not a Whisper model.
    pub(crate) fn sizes(&self) -> Parsed<Sizes> {
        if self.spec != WHISPER_SPEC {
            return bad(format!(
                "it holds a {} model, not {WHISPER_SPEC}",
                self.spec
            ));
        }
        let d_model = self.dim("decoder/embeddings/weight", 1)?;
        let sizes = Sizes {
            d_model,
            vocab: self.dim("decoder/embeddings/weight", 0)?,
            mel_bins: self.dim("encoder/conv1/weight", 1)?,
            encoder_layers: self.layers("encoder"),
            decoder_layers: self.layers("decoder"),
            encoder_heads: self.heads("encoder", d_model),
            decoder_heads: self.heads("decoder", d_model),
            source_positions: self.dim("encoder/position_encodings/encodings", 0)?,
            target_positions: self.dim("decoder/position_encodings/encodings", 0)?,
        };
        if sizes.encoder_layers == 0 || sizes.decoder_layers == 0 {
            return bad("it has no encoder or no decoder layers");
        }
        if !d_model.is_multiple_of(sizes.encoder_heads)
            || !d_model.is_multiple_of(sizes.decoder_heads)
        {
            return bad(format!("{d_model} dimensions do not split into its heads"));
        }
        Ok(sizes)
    }

    /// The weights under the names candle's `whisper::model::Whisper` loads, as `f32` CPU
    /// tensors (shapes are checked when the model is built from them).
    pub(crate) fn whisper_tensors(&self, sizes: &Sizes) -> Parsed<HashMap<String, Tensor>> {
        let mut out = Tensors::default();
        for (side, layers) in [
            ("encoder", sizes.encoder_layers),
            ("decoder", sizes.decoder_layers),
        ] {
            let hf = format!("model.{side}");
            for i in 0..layers {
                let (l, h) = (format!("{side}/layer_{i}"), format!("{hf}.layers.{i}"));
                out.layer_norm(
                    self,
                    &format!("{h}.self_attn_layer_norm"),
                    &format!("{l}/self_attention/layer_norm"),
                )?;
                // Fused q, k, v (CTranslate2 stores a zero bias for k, which candle's model
                // lacks: a key bias shifts every score of a query equally, so softmax ignores
                // it anyway).
                let fused = format!("{l}/self_attention/linear_0");
                let [q, k, v] = out.split::<3>(self, &format!("{fused}/weight"))?;
                let [bq, _, bv] = out.split::<3>(self, &format!("{fused}/bias"))?;
                let attn = format!("{h}.self_attn");
                out.put(format!("{attn}.q_proj.weight"), q)?;
                out.put(format!("{attn}.q_proj.bias"), bq)?;
                out.put(format!("{attn}.k_proj.weight"), k)?;
                out.put(format!("{attn}.v_proj.weight"), v)?;
                out.put(format!("{attn}.v_proj.bias"), bv)?;
                out.linear(
                    self,
                    &format!("{attn}.out_proj"),
                    &format!("{l}/self_attention/linear_1"),
                )?;
                if side == "decoder" {
                    let cross = format!("{h}.encoder_attn");
                    out.layer_norm(
                        self,
                        &format!("{cross}_layer_norm"),
                        &format!("{l}/attention/layer_norm"),
                    )?;
                    out.linear(
                        self,
                        &format!("{cross}.q_proj"),
                        &format!("{l}/attention/linear_0"),
                    )?;
                    let fused = format!("{l}/attention/linear_1");
                    let [k, v] = out.split::<2>(self, &format!("{fused}/weight"))?;
                    let [_, bv] = out.split::<2>(self, &format!("{fused}/bias"))?;
                    out.put(format!("{cross}.k_proj.weight"), k)?;
                    out.put(format!("{cross}.v_proj.weight"), v)?;
                    out.put(format!("{cross}.v_proj.bias"), bv)?;
                    out.linear(
                        self,
                        &format!("{cross}.out_proj"),
                        &format!("{l}/attention/linear_2"),
                    )?;
                }
                out.layer_norm(
                    self,
                    &format!("{h}.final_layer_norm"),
                    &format!("{l}/ffn/layer_norm"),
                )?;
                out.linear(self, &format!("{h}.fc1"), &format!("{l}/ffn/linear_0"))?;
                out.linear(self, &format!("{h}.fc2"), &format!("{l}/ffn/linear_1"))?;
            }
            out.layer_norm(
                self,
                &format!("{hf}.layer_norm"),
                &format!("{side}/layer_norm"),
            )?;
        }
        // The encoder's positions are sinusoids candle computes itself.
        out.copy(
            self,
            "model.decoder.embed_positions.weight",
            "decoder/position_encodings/encodings",
        )?;
        for conv in ["conv1", "conv2"] {
            out.linear(
                self,
                &format!("model.encoder.{conv}"),
                &format!("encoder/{conv}"),
            )?;
        }
        out.copy(
            self,
            "model.decoder.embed_tokens.weight",
            "decoder/embeddings/weight",
        )?;
        Ok(out.0)
    }
}

/// The tensors built so far.
#[derive(Default)]
struct Tensors(HashMap<String, Tensor>);

/// Values and their shape.
type Array = (Vec<f32>, Vec<usize>);

impl Tensors {
    fn put(&mut self, name: String, (values, dims): Array) -> Parsed<()> {
        let tensor = Tensor::from_vec(values, dims, &Device::Cpu)
            .map_err(|e| FormatError(format!("{name}: {e}")))?;
        self.0.insert(name, tensor);
        Ok(())
    }

    fn copy(&mut self, model: &Ct2Model<'_>, to: &str, from: &str) -> Parsed<()> {
        let v = model.get(from)?;
        self.put(to.to_owned(), (v.to_f32(from)?, v.dims.clone()))
    }

    fn linear(&mut self, model: &Ct2Model<'_>, to: &str, from: &str) -> Parsed<()> {
        self.copy(model, &format!("{to}.weight"), &format!("{from}/weight"))?;
        self.copy(model, &format!("{to}.bias"), &format!("{from}/bias"))
    }

    fn layer_norm(&mut self, model: &Ct2Model<'_>, to: &str, from: &str) -> Parsed<()> {
        self.copy(model, &format!("{to}.weight"), &format!("{from}/gamma"))?;
        self.copy(model, &format!("{to}.bias"), &format!("{from}/beta"))
    }

    /// `name` cut into `N` equal parts along its first dimension.
    fn split<const N: usize>(&self, model: &Ct2Model<'_>, name: &str) -> Parsed<[Array; N]> {
        let v = model.get(name)?;
        let rows = v.dims.first().copied().unwrap_or(0);
        if rows == 0 || !rows.is_multiple_of(N) {
            return bad(format!("{name} {:?} does not split into {N} parts", v.dims));
        }
        let values = v.to_f32(name)?;
        let part = values.len() / N;
        let mut dims = v.dims.clone();
        dims[0] = rows / N;
        Ok(std::array::from_fn(|i| {
            (values[i * part..(i + 1) * part].to_vec(), dims.clone())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    /// A tiny valid file: one f16 vector, one i32 scalar, one alias.
    fn sample() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        string(&mut b, WHISPER_SPEC);
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        string(&mut b, "decoder/embeddings/weight");
        b.push(2);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.push(4);
        b.extend_from_slice(&6u32.to_le_bytes());
        for h in [0x3c00u16, 0xc000, 0x0001] {
            b.extend_from_slice(&h.to_le_bytes());
        }
        string(&mut b, "encoder/num_heads");
        b.push(0);
        b.push(3);
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&6i32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        string(&mut b, "decoder/projection/weight");
        string(&mut b, "decoder/embeddings/weight");
        b
    }

    #[test]
    fn reads_variables_and_aliases() {
        let bytes = sample();
        let model = parse(&bytes).expect("valid");
        assert_eq!(model.spec, WHISPER_SPEC);
        let w = model.get("decoder/projection/weight").expect("aliased");
        assert_eq!(w.dims, [1, 3]);
        assert_eq!(w.to_f32("w").expect("f16"), [1.0, -2.0, 2f32.powi(-24)]);
        let heads = &model.variables["encoder/num_heads"];
        assert_eq!(heads.to_usize(), Some(6));
        assert!(heads.to_f32("heads").is_err(), "integers are not weights");
        // Not a whole Whisper model: the missing variable is named.
        let e = model.sizes().expect_err("incomplete");
        assert!(e.0.contains("encoder/conv1/weight"), "{e}");
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample();
        for end in 0..bytes.len() {
            // Cutting inside the optional alias table leaves a valid file only at its start.
            let aliases_start = bytes.len() - (4 + 2 * (2 + 26));
            if end == aliases_start {
                assert!(parse(&bytes[..end]).is_ok());
                continue;
            }
            let e = parse(&bytes[..end]).expect_err("truncated");
            assert!(e.0.contains("truncated"), "{end}: {e}");
        }
    }

    #[test]
    fn corrupt_headers_are_errors() {
        let good = sample();
        let mut version = good.clone();
        version[0] = 99;
        assert!(
            parse(&version)
                .expect_err("version")
                .0
                .contains("version 99")
        );
        // A size that does not match the shape.
        let mut size = good.clone();
        let at = 4 + 2 + 12 + 4 + 4 + 2 + 26 + 1 + 8 + 1;
        size[at] = 8;
        assert!(parse(&size).expect_err("size").0.contains("do not hold"));
        // An unknown type code, a huge rank, a huge variable count.
        let mut dtype = good.clone();
        dtype[at - 1] = 9;
        assert!(parse(&dtype).expect_err("dtype").0.contains("type code 9"));
        let mut rank = good.clone();
        rank[at - 10] = 200;
        assert!(parse(&rank).expect_err("rank").0.contains("rank 200"));
        let mut count = good;
        count[4 + 2 + 12 + 4..4 + 2 + 12 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&count).is_err());
        assert!(parse(b"garbage").is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert!(f16_to_f32(0x8000).is_sign_negative());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
