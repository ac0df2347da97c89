//! MiniLM's BERT forward pass, written for this one job.
//!
//! candle's `BertModel` pads every text of a batch to the longest one, allocates a fresh tensor
//! for each of its ~30 element-wise steps per layer, builds layer norm out of eight tensor passes
//! and computes GELU with libm's scalar `erff`; in a profile of the grader only ~40 % of the time
//! was matrix products. Here the texts of a batch are packed back to back (no padding; attention
//! stays within each text), the matrix products go to `gemm` (the kernel candle itself uses)
//! with the bias added in the same call, the three attention projections are one product,
//! residual + layer norm and bias + GELU are single passes, and every buffer is reused across
//! batches, so after the first batch a worker allocates nothing.
//!
//! Weights are loaded with candle from the pinned safetensors file. Equality with an independent
//! float64 numpy forward is a test (`tests/embedded.rs`, fixture made by
//! `scripts/golden/make_minilm_golden.py`).

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use gemm::Parallelism;
use serde::Deserialize;

/// The `config.json` fields the forward pass depends on.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_position")]
    pub position_embedding_type: String,
}

fn default_act() -> String {
    "gelu".into()
}

fn default_position() -> String {
    "absolute".into()
}

/// `y = x · Wᵀ + b` with `W` stored `out × inp`, row-major (PyTorch's layout).
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inp: usize,
    out: usize,
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Layer {
    /// Query, key and value stacked: `3·hidden × hidden`.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// The first `layers.len()` transformer layers of a BERT encoder.
pub(crate) struct Encoder {
    hidden: usize,
    heads: usize,
    eps: f32,
    max_positions: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

/// Per-worker buffers, grown to the largest batch seen and then reused.
#[derive(Default)]
pub(crate) struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
    intermediate: Vec<f32>,
    scores: Vec<f32>,
}

fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len, 0.0);
    &mut buf[..len]
}

impl Encoder {
    /// Build from the checkpoint's tensors, keeping `layers` of its layers.
    pub(crate) fn from_tensors(
        tensors: &HashMap<String, Tensor>,
        config: &BertConfig,
        layers: usize,
    ) -> Result<Encoder, String> {
        if config.hidden_act != "gelu" {
            return Err(format!(
                "config.json: hidden_act {:?} is not supported (only \"gelu\")",
                config.hidden_act
            ));
        }
        if config.position_embedding_type != "absolute" {
            return Err(format!(
                "config.json: position_embedding_type {:?} is not supported (only \"absolute\")",
                config.position_embedding_type
            ));
        }
        let (h, heads) = (config.hidden_size, config.num_attention_heads);
        if heads == 0 || h % heads != 0 {
            return Err(format!(
                "config.json: hidden_size {h} is not a multiple of num_attention_heads {heads}"
            ));
        }
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
            let t = tensors
                .get(name)
                .ok_or_else(|| format!("model.safetensors has no tensor {name}"))?;
            if t.dims() != shape {
                return Err(format!(
                    "model.safetensors: {name} has shape {:?}, expected {shape:?}",
                    t.dims()
                ));
            }
            t.to_dtype(DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| format!("model.safetensors: {name}: {e}"))
        };
        let linear = |name: &str, out: usize, inp: usize| -> Result<Linear, String> {
            Ok(Linear {
                weight: get(&format!("{name}.weight"), &[out, inp])?,
                bias: get(&format!("{name}.bias"), &[out])?,
                inp,
                out,
            })
        };
        let norm = |name: &str| -> Result<Norm, String> {
            Ok(Norm {
                weight: get(&format!("{name}.weight"), &[h])?,
                bias: get(&format!("{name}.bias"), &[h])?,
            })
        };
        let mut kept = Vec::with_capacity(layers);
        for i in 0..layers.min(config.num_hidden_layers) {
            let p = format!("encoder.layer.{i}");
            let [q, k, v] = ["query", "key", "value"]
                .map(|part| linear(&format!("{p}.attention.self.{part}"), h, h));
            let (q, k, v) = (q?, k?, v?);
            kept.push(Layer {
                qkv: Linear {
                    weight: [q.weight, k.weight, v.weight].concat(),
                    bias: [q.bias, k.bias, v.bias].concat(),
                    inp: h,
                    out: 3 * h,
                },
                attention_out: linear(&format!("{p}.attention.output.dense"), h, h)?,
                attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                intermediate: linear(
                    &format!("{p}.intermediate.dense"),
                    config.intermediate_size,
                    h,
                )?,
                output: linear(&format!("{p}.output.dense"), h, config.intermediate_size)?,
                output_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let token_types = get("embeddings.token_type_embeddings.weight", &[2, h])
            .or_else(|_| get("embeddings.token_type_embeddings.weight", &[1, h]))?;
        Ok(Encoder {
            hidden: h,
            heads,
            eps: config.layer_norm_eps as f32,
            max_positions: config.max_position_embeddings,
            word: get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position: get(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            token_type: token_types[..h].to_vec(),
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers: kept,
        })
    }

    /// Longest text the position embeddings cover; [`Encoder::forward`] reads no further.
    pub(crate) fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The word-piece embedding table, `vocab × hidden`, row-major.
    pub(crate) fn word_embeddings(&self) -> &[f32] {
        &self.word
    }

    /// Final hidden states of `texts` (token ids, each at most `max_position_embeddings` long),
    /// packed back to back: row-major `Σ len × hidden`, text after text. Ids outside the
    /// vocabulary are read as id 0 (`[PAD]`); the tokenizer never produces them.
    pub(crate) fn forward<'s>(&self, texts: &[&[u32]], scratch: &'s mut Scratch) -> &'s [f32] {
        let h = self.hidden;
        let lens: Vec<usize> = texts
            .iter()
            .map(|t| t.len().min(self.max_positions))
            .collect();
        let n: usize = lens.iter().sum();
        let x = sized(&mut scratch.x, n * h);
        let mut row = 0;
        for (text, &len) in texts.iter().zip(&lens) {
            for (pos, &id) in text[..len].iter().enumerate() {
                let start = (id as usize) * h;
                let word = self.word.get(start..start + h).unwrap_or(&self.word[..h]);
                let out = &mut x[row * h..(row + 1) * h];
                let position = &self.position[pos * h..(pos + 1) * h];
                for (((o, w), p), t) in out.iter_mut().zip(word).zip(position).zip(&self.token_type)
                {
                    *o = w + p + t;
                }
                layer_norm(out, None, &self.embedding_norm, self.eps);
                row += 1;
            }
        }
        for layer in &self.layers {
            self.layer(layer, &lens, n, scratch);
        }
        &scratch.x[..n * h]
    }

    fn layer(&self, layer: &Layer, lens: &[usize], n: usize, s: &mut Scratch) {
        let h = self.hidden;
        let qkv = sized(&mut s.qkv, n * 3 * h);
        linear(&s.x[..n * h], n, &layer.qkv, qkv);
        let context = sized(&mut s.context, n * h);
        let head_dim = h / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let longest = lens.iter().copied().max().unwrap_or(0);
        let scores = sized(&mut s.scores, longest * longest);
        let mut first = 0;
        for &len in lens {
            for head in 0..self.heads {
                let q = &qkv[first * 3 * h + head * head_dim..];
                let k = &qkv[first * 3 * h + h + head * head_dim..];
                let v = &qkv[first * 3 * h + 2 * h + head * head_dim..];
                let scores = &mut scores[..len * len];
                // scores = scale · Q Kᵀ over this text's tokens only.
                matmul(
                    len,
                    len,
                    head_dim,
                    Operand {
                        data: q,
                        row: 3 * h,
                        col: 1,
                    },
                    Operand {
                        data: k,
                        row: 1,
                        col: 3 * h,
                    },
                    Target {
                        data: scores,
                        row: len,
                        col: 1,
                    },
                    scale,
                    false,
                );
                for r in scores.chunks_exact_mut(len) {
                    softmax(r);
                }
                matmul(
                    len,
                    head_dim,
                    len,
                    Operand {
                        data: scores,
                        row: len,
                        col: 1,
                    },
                    Operand {
                        data: v,
                        row: 3 * h,
                        col: 1,
                    },
                    Target {
                        data: &mut context[first * h + head * head_dim..],
                        row: h,
                        col: 1,
                    },
                    1.0,
                    false,
                );
            }
            first += len;
        }
        let projected = sized(&mut s.projected, n * h);
        linear(context, n, &layer.attention_out, projected);
        let x = &mut s.x[..n * h];
        for (row, add) in x.chunks_exact_mut(h).zip(projected.chunks_exact(h)) {
            layer_norm(row, Some(add), &layer.attention_norm, self.eps);
        }
        let inner = layer.intermediate.out;
        let intermediate = sized(&mut s.intermediate, n * inner);
        linear(x, n, &layer.intermediate, intermediate);
        gelu(intermediate);
        linear(intermediate, n, &layer.output, projected);
        for (row, add) in x.chunks_exact_mut(h).zip(projected.chunks_exact(h)) {
            layer_norm(row, Some(add), &layer.output_norm, self.eps);
        }
    }
}

/// A read-only matrix view: element (i, j) at `data[i·row + j·col]`.
struct Operand<'a> {
    data: &'a [f32],
    row: usize,
    col: usize,
}

/// A writable matrix view, laid out like [`Operand`].
struct Target<'a> {
    data: &'a mut [f32],
    row: usize,
    col: usize,
}

/// `dst = scale · lhs · rhs` (`m × k` times `k × n`), plus the old `dst` when `accumulate`.
///
/// The workspace's only `unsafe`: gemm takes raw pointers and strides; the bounds are checked
/// here first, so callers stay safe.
#[allow(clippy::too_many_arguments, unsafe_code)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    dst: Target<'_>,
    scale: f32,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, row: usize, col: usize| {
        (rows.max(1) - 1) * row + (cols.max(1) - 1) * col
    };
    // Every element the kernel may touch lies inside its slice: gemm reads and writes only
    // (i, j) with i < rows and j < cols at the given strides.
    assert!(k == 0 || last(m, k, lhs.row, lhs.col) < lhs.data.len());
    assert!(k == 0 || last(k, n, rhs.row, rhs.col) < rhs.data.len());
    assert!(last(m, n, dst.row, dst.col) < dst.data.len());
    // SAFETY: the asserts above keep every accessed element in bounds; `dst` is a unique
    // borrow, so it aliases neither operand; strides fit in isize because they index slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            dst.col as isize,
            dst.row as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col as isize,
            lhs.row as isize,
            rhs.data.as_ptr(),
            rhs.col as isize,
            rhs.row as isize,
            1.0,
            scale,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// `out = x · Wᵀ + b` for `rows` rows of `x`.
fn linear(x: &[f32], rows: usize, lin: &Linear, out: &mut [f32]) {
    for r in out.chunks_exact_mut(lin.out) {
        r.copy_from_slice(&lin.bias);
    }
    matmul(
        rows,
        lin.out,
        lin.inp,
        Operand {
            data: x,
            row: lin.inp,
            col: 1,
        },
        Operand {
            data: &lin.weight,
            row: 1,
            col: lin.inp,
        },
        Target {
            data: out,
            row: lin.out,
            col: 1,
        },
        1.0,
        true,
    );
}

/// `row = LayerNorm(row + add)` with the norm's weight and bias.
fn layer_norm(row: &mut [f32], add: Option<&[f32]>, norm: &Norm, eps: f32) {
    if let Some(add) = add {
        for (x, a) in row.iter_mut().zip(add) {
            *x += a;
        }
    }
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((x, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
        *x = (*x - mean) * inv * w + b;
    }
}

/// In-place softmax of one row of attention scores.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// The exact (erf) GELU, `x · (1 + erf(x/√2)) / 2`, in place.
fn gelu(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// erf as `x·P(x²)/Q(x²)` on [−4, 4] (beyond, erf rounds to ±1 in f32). Our own least-squares
/// fit to erf (float64, 40k points); evaluated in f32 the largest error is 3e-7, a few ulp,
/// against 1e-9 of libm's `erff` at several times the cost, and the loop vectorises.
#[inline]
pub(crate) fn erf(x: f32) -> f32 {
    const P: [f32; 6] = [
        std::f32::consts::FRAC_2_SQRT_PI,
        0.194_495_88,
        0.053_242_114,
        0.003_930_489_7,
        0.000_286_731_15,
        1.992_427_5e-6,
    ];
    const Q: [f32; 6] = [
        1.0,
        0.505_699_1,
        0.115_757_57,
        0.015_297_416,
        0.001_199_265_4,
        3.759_538_5e-5,
    ];
    let x = x.clamp(-4.0, 4.0);
    let z = x * x;
    let p = ((((P[5] * z + P[4]) * z + P[3]) * z + P[2]) * z + P[1]) * z + P[0];
    let q = ((((Q[5] * z + Q[4]) * z + Q[3]) * z + Q[2]) * z + Q[1]) * z + Q[0];
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf to 1e-12 by its Maclaurin series (|x| ≤ 3) or its continued fraction (beyond).
    fn erf_reference(x: f64) -> f64 {
        if x.abs() > 3.0 {
            let (s, a) = (x.signum(), x.abs());
            // erfc(a) = exp(−a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + …)))).
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            return s * (1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f));
        }
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_within_a_few_ulp() {
        let mut worst = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f64 / 10_000.0;
            worst = worst.max((erf(x as f32) as f64 - erf_reference(x)).abs());
        }
        assert!(worst < 5e-7, "max |erf error| {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(10.0), erf(4.0));
        assert!(erf(f32::INFINITY) > 0.999_999);
    }

    #[test]
    fn matmul_handles_strided_views() {
        // lhs 2×3, rhs given transposed (3×2 as a 2×3 buffer read column-wise).
        let lhs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let rhs_t = [1.0, 0.0, -1.0, 2.0, 1.0, 0.5];
        let mut out = [10.0, 20.0, 30.0, 40.0];
        matmul(
            2,
            2,
            3,
            Operand {
                data: &lhs,
                row: 3,
                col: 1,
            },
            Operand {
                data: &rhs_t,
                row: 1,
                col: 3,
            },
            Target {
                data: &mut out,
                row: 2,
                col: 1,
            },
            2.0,
            true,
        );
        // lhs · rhs = [[-2, 5.5], [-2, 16]]; out = old + 2·that.
        assert_eq!(out, [6.0, 31.0, 26.0, 72.0]);
    }

    #[test]
    fn layer_norm_centres_and_scales() {
        let norm = Norm {
            weight: vec![1.0; 4],
            bias: vec![0.5; 4],
        };
        let mut row = [1.0, 2.0, 3.0, 4.0];
        layer_norm(&mut row, Some(&[1.0, 1.0, 1.0, 1.0]), &norm, 0.0);
        let mean: f32 = row.iter().sum::<f32>() / 4.0;
        let var: f32 = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / 4.0;
        assert!((mean - 0.5).abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
    }
}
