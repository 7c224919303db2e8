"""Shape rule, hyperparameter rules and FLOP counts of pilot models (pure Python: no torch).

The shape rule turns a requested parameter count into a depth, width and number of heads; the
hyperparameter rules scale batch size, learning rate and warmup with the model and the token
budget; the FLOP counts give both ``6 N D`` and an analytic count that includes attention and the
output layer. Everything here is deterministic and recorded in each run's row, so a run can be
reproduced from its row alone.

Parameter counting
------------------
``N`` is the **non-embedding** parameter count (Kaplan et al. 2020): all parameters but the token
embedding and, for GPT-2, the learned position embedding. The input and output embeddings are tied,
so the output layer adds no parameters; its cost is in the analytic FLOP count. ``N_total`` counts
everything. Both are counted from the built model, not from the formulas here, which only choose
the shape.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import BayescaleError

#: Architectures the runner builds: Llama-style decoder, GPT-2 decoder (both from transformers
#: configs) and an LSTM language model in plain torch.
ARCHES = ("llama", "gpt2", "lstm")

#: Width per layer the shape rule aims for (d_model / n_layer). Kaplan et al. 2020 (fig. 5) find the
#: loss flat within a few percent for aspect ratios 20-200; small models favour the low end.
ASPECT = 32
#: Width per attention head: 16 below d_model 128, 32 below 512, 64 from there on.
HEAD_DIMS = ((128, 16), (512, 32), (10**9, 64))
#: Weight of the aspect-ratio term against the parameter-count term in the shape rule.
ASPECT_WEIGHT = 0.2
#: Layers of the LSTM (Kaplan et al. compare 1-4 layer LSTMs); width follows from N.
LSTM_LAYERS = 2
#: Smallest and largest width the rule considers.
MIN_WIDTH, MAX_WIDTH = 16, 8192
#: Deepest model the rule considers.
MAX_LAYERS = 128
#: Largest pilot (non-embedding parameters) per architecture that the shape and hyperparameter
#: rules are stated for: transformers up to 1e10 (92 layers of width 3008, aspect ratio 33; past
#: it the rule runs into :data:`MAX_LAYERS` and the learning rate into :data:`LR_FLOOR`), the
#: two-layer LSTM up to 1e9 (width :data:`MAX_WIDTH`). Pilots are small models; a larger request
#: is refused, never silently built smaller.
MAX_PARAMS = {"llama": 1e10, "gpt2": 1e10, "lstm": 1e9}
#: Bytes of training state per parameter: fp32 weights and gradients and AdamW's two moments.
BYTES_PER_PARAM = 16
#: Bytes per activation value kept for the backward pass, by training precision, as a multiple of
#: Korthikanti et al.'s 16-bit count. fp32: 2. bf16 autocast (the runner on a GPU): 1.5, above the
#: 1.12-1.31 measured on an H200 (eager, 1e7-3e8 parameters at 128 and 256 sequences of 128; compiled
#: less): the residual stream and the norms stay fp32 there, the matrix inputs are bf16.
ACTIVATION_SCALE = {"fp32": 2.0, "bf16": 1.5}


class ShapeError(BayescaleError):
    """A requested pilot shape or hyperparameter that cannot be built."""


@dataclass(frozen=True)
class Shape:
    """Depth, width and heads of a pilot model."""

    arch: str
    n_layer: int
    d_model: int
    n_head: int
    d_ff: int
    vocab_size: int
    seq_len: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _validate_arch(arch: str) -> None:
    if arch not in ARCHES:
        raise ShapeError(f"arch={arch!r} is not supported; allowed: {list(ARCHES)}")


def head_dim(d_model: int) -> int:
    """Width of one attention head for a model of width ``d_model``."""
    return next(h for limit, h in HEAD_DIMS if d_model < limit)


def ffn_width(arch: str, d_model: int) -> int:
    """Hidden width of the feed-forward block: 4 d for GPT-2, 8/3 d rounded up to a multiple of 32
    for Llama's SwiGLU (three matrices, about the same parameters as GPT-2's two)."""
    if arch == "llama":
        return 32 * math.ceil(8 * d_model / 3 / 32)
    return 4 * d_model


def non_embedding_params(arch: str, n_layer: int, d_model: int) -> int:
    """Non-embedding parameters of the shape, by formula (the runner counts the built model too).

    Llama: attention 4 d^2, SwiGLU 3 d f, two RMSNorm weights per layer and a final one. GPT-2: attention
    4 d^2 + 4 d biases, MLP 2 d f + f + d, two LayerNorms per layer and a final one. LSTM: 4 gates of
    (input + hidden) x hidden weights and two biases per layer, and the d x d output projection.
    """
    _validate_arch(arch)
    d, f = d_model, ffn_width(arch, d_model)
    if arch == "llama":
        return n_layer * (4 * d * d + 3 * d * f + 2 * d) + d
    if arch == "gpt2":
        return n_layer * (4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d) + 2 * d
    return n_layer * (4 * (2 * d * d + 2 * d)) + d * d + d


def shape_for(n_params: float, arch: str = "llama", *, vocab_size: int = 2048, seq_len: int = 128) -> Shape:
    """The documented shape rule: depth, width and heads for about ``n_params`` non-embedding parameters.

    Transformers: for each depth L = 1, 2, ... the width d is the multiple of the head width
    (:func:`head_dim`) whose non-embedding count is closest to ``n_params``; the depth that minimises
    ``|log(count / n_params)| + ASPECT_WEIGHT * |log((d / L) / ASPECT)|`` wins (count within a few
    percent of the request, aspect ratio near :data:`ASPECT`). Heads are d / :func:`head_dim`.
    LSTM: :data:`LSTM_LAYERS` layers, width the multiple of 4 closest to the request.

    Parameters
    ----------
    n_params : float
        Requested non-embedding parameters (>= 1000).
    arch : {"llama", "gpt2", "lstm"}
    vocab_size, seq_len : int
        Recorded in the shape (the vocabulary comes from the tokenizer).

    Returns
    -------
    Shape

    Examples
    --------
    >>> s = shape_for(2e6)
    >>> (s.n_layer, s.d_model, s.n_head)
    (4, 192, 6)
    """
    _validate_arch(arch)
    if not (isinstance(n_params, (int, float)) and math.isfinite(n_params) and n_params >= 1e3):
        raise ShapeError(f"n_params={n_params!r} must be a number >= 1000 (non-embedding parameters)")
    check_size(n_params, arch)
    if arch == "lstm":
        best = min(
            range(8, MAX_WIDTH + 1, 4),
            key=lambda d: abs(math.log(non_embedding_params("lstm", LSTM_LAYERS, d) / n_params)),
        )
        return Shape(arch, LSTM_LAYERS, best, 0, 0, int(vocab_size), int(seq_len))
    widths = [w for w in range(MIN_WIDTH, MAX_WIDTH + 1, 16) if w % head_dim(w) == 0]
    best = None
    for n_layer in range(1, MAX_LAYERS + 1):
        d = min(widths, key=lambda w: abs(math.log(non_embedding_params(arch, n_layer, w) / n_params)))
        score = abs(math.log(non_embedding_params(arch, n_layer, d) / n_params)) + ASPECT_WEIGHT * abs(
            math.log(d / n_layer / ASPECT)
        )
        if best is None or score < best[0]:
            best = (score, n_layer, d)
    _, n_layer, d = best
    return Shape(arch, n_layer, d, d // head_dim(d), ffn_width(arch, d), int(vocab_size), int(seq_len))


def check_size(n_params: float, arch: str) -> None:
    """Refuse a pilot larger than :data:`MAX_PARAMS` of ``arch`` (before anything is built)."""
    limit = MAX_PARAMS[arch]
    if n_params > limit:
        raise ShapeError(
            f"n_params={n_params:.3g} is above the largest {arch} pilot the runner plans ({limit:.0e} non-embedding "
            "parameters: the shape and learning-rate rules are stated up to there); pilots are small models"
        )


def total_params(shape: Shape) -> int:
    """All parameters of the shape by formula: non-embedding, the (tied) token embedding, and GPT-2's
    position embedding."""
    n = non_embedding_params(shape.arch, shape.n_layer, shape.d_model) + shape.vocab_size * shape.d_model
    return n + (shape.seq_len * shape.d_model if shape.arch == "gpt2" else 0)


def memory_bytes(shape: Shape, batch_size: int, precision: str = "fp32") -> dict[str, float]:
    """Estimated training memory, in bytes: ``state`` (:data:`BYTES_PER_PARAM` per parameter),
    ``activations`` (kept for the backward pass at ``batch_size`` sequences: per layer and token about
    34 d + 5 heads T values for a transformer, after Korthikanti et al. 2022, and 20 d for an LSTM, at
    :data:`ACTIVATION_SCALE` bytes each for ``precision`` ("fp32" or "bf16"); the logits, their softmax
    and gradient, 12 V bytes per token in fp32 either way) and ``total``. An upper bound; the
    allocator's slack is not counted."""
    if precision not in ACTIVATION_SCALE:
        raise ShapeError(f"precision={precision!r} must be one of {sorted(ACTIVATION_SCALE)}")
    d, L, T, V = shape.d_model, shape.n_layer, shape.seq_len, shape.vocab_size
    per_layer = 20.0 * d if shape.arch == "lstm" else 34.0 * d + 5.0 * shape.n_head * T
    tokens = float(batch_size) * T
    activations = tokens * (L * per_layer * ACTIVATION_SCALE[precision] + 12.0 * V)
    state = float(BYTES_PER_PARAM) * total_params(shape)
    return {"state": state, "activations": activations, "total": state + activations}


def forward_flops_per_token(shape: Shape) -> float:
    """Analytic forward FLOPs per token, after Hoffmann et al. 2022, appendix F.

    Counts the matrix multiplies of attention (QKV and output projections, the score and value
    products over the context, averaged over causal positions as the full ``seq_len`` square as in
    appendix F), the softmax, the feed-forward block and the output logits; the embedding lookup is
    counted as appendix F does (2 d V). A multiply-add is 2 FLOPs. LSTM: 4 gates of (input + hidden)
    x hidden per layer plus elementwise gate work, the output projection, and the logits.
    """
    d, L, V, T = shape.d_model, shape.n_layer, shape.vocab_size, shape.seq_len
    embed = 2 * d * V
    logits = 2 * d * V
    if shape.arch == "lstm":
        per_layer = 2 * 4 * (2 * d * d) + 10 * d
        return float(embed + L * per_layer + 2 * d * d + logits)
    f = shape.d_ff
    attn = 2 * 3 * d * d + 2 * T * d + 3 * shape.n_head * T + 2 * T * d + 2 * d * d
    ffn = 2 * 3 * d * f if shape.arch == "llama" else 2 * 2 * d * f
    return float(embed + L * (attn + ffn) + logits)


def training_flops(shape: Shape, tokens: float) -> float:
    """Analytic training FLOPs: forward plus backward (twice the forward) over ``tokens`` tokens."""
    return 3.0 * forward_flops_per_token(shape) * float(tokens)


@dataclass(frozen=True)
class Hyper:
    """Training hyperparameters of one pilot (all recorded in its row)."""

    batch_size: int  # sequences per optimizer step
    lr: float  # peak learning rate
    min_lr_ratio: float  # cosine decays to this fraction of the peak
    warmup_steps: int
    steps: int
    weight_decay: float
    adam_beta1: float
    adam_beta2: float
    grad_clip: float
    schedule: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Floor of :func:`kaplan_lr`. Kaplan et al.'s linear-in-log rule falls to zero near N = 1.2e10 and
#: below it after; 1e-4 is the peak rate of the largest Chinchilla models (Hoffmann et al. 2022, 70B).
#: The floor takes over from N = 5.9e9, so smaller pilots keep the rule's rate (and their run ids).
LR_FLOOR = 1e-4


def kaplan_lr(n_params: float) -> float:
    """Kaplan et al. 2020 (eq. D.1) learning rate for N non-embedding parameters:
    0.003239 - 0.0001395 log N, never below :data:`LR_FLOOR`."""
    return max(LR_FLOOR, 0.003239 - 0.0001395 * math.log(n_params))


#: Factor on Kaplan et al.'s learning-rate rule for short pilots. Kaplan's rate was tuned for
#: long runs; for a few hundred steps it undertrains. Measured on a llama pilot (N = 1.1e5
#: non-embedding, D = 1.5e6 tokens, stdlib corpus): held-out loss 4.65 / 4.16 / 4.21 / 4.40 nats
#: for factors 1 / 3 / 6 / 12. GPT-2 uses the same factor (not tuned separately). The LSTM's tied,
#: tanh-bounded output learns slowly at that rate: at N = 2.8e4, D = 3e5 it reached 6.33 nats (above
#: the unigram entropy, 6.25) with factor 3 and 5.46 with factor 10.
LR_SCALE = 3.0
LR_SCALES = {"llama": LR_SCALE, "gpt2": LR_SCALE, "lstm": 10.0}


def hyper_for(
    n_params: float,
    tokens: float,
    seq_len: int,
    *,
    lr_scale: float | None = None,
    arch: str = "llama",
    batch_size: int | None = None,
    min_steps: int = 250,
    max_batch: int = 128,
) -> Hyper:
    """Hyperparameter rules scaled by model size and token budget.

    - **Batch**: the largest power of two (4 to ``max_batch`` sequences) that leaves at least
      ``min_steps`` optimizer steps, unless ``batch_size`` is given.
    - **Learning rate**: ``lr_scale`` (default :data:`LR_SCALES` of ``arch``) times Kaplan et al.'s rule
      :func:`kaplan_lr` (smaller models take larger rates), cosine decay over the whole run to 10% of the peak (Hoffmann et al. 2022: the
      cosine length matches the token budget).
    - **Warmup**: as many tokens as the model has parameters (Porian et al. 2024 find warmup should
      scale with N), at least 10 steps and at most a quarter of the run.
    - AdamW (0.9, 0.95), weight decay 0.1, gradient clipping at 1.
    """
    if not (math.isfinite(tokens) and tokens > 0):
        raise ShapeError(f"tokens={tokens!r} must be a positive number")
    _validate_arch(arch)
    if lr_scale is None:
        lr_scale = LR_SCALES[arch]
    if batch_size is None:
        b = tokens / (seq_len * min_steps)
        batch_size = int(min(max_batch, max(4, 2 ** math.floor(math.log2(max(b, 1.0))))))
    elif batch_size < 1:
        raise ShapeError(f"batch_size={batch_size!r} must be a positive integer")
    per_step = batch_size * seq_len
    steps = max(1, math.ceil(tokens / per_step))
    warmup = min(max(10, round(n_params / per_step)), steps // 4)
    return Hyper(
        batch_size=int(batch_size),
        lr=float(lr_scale * kaplan_lr(n_params)),
        min_lr_ratio=0.1,
        warmup_steps=int(warmup),
        steps=int(steps),
        weight_decay=0.1,
        adam_beta1=0.9,
        adam_beta2=0.95,
        grad_clip=1.0,
        schedule="cosine_with_min_lr",
    )
