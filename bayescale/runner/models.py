"""The pilot models (Llama and GPT-2 from ``transformers`` configs, an LSTM in torch), their parameter
counts, and the token windows they train on.

torch and transformers (the ``runner`` extra) are imported inside the functions that use them, so
that importing this module needs neither.
"""

from __future__ import annotations

import numpy as np

from ..errors import BayescaleError
from .shapes import ARCHES, Shape, ShapeError


class PilotError(BayescaleError):
    """A pilot that cannot be run as asked."""


def require_torch():
    """torch, or a :class:`PilotError` naming the extra to install."""
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise PilotError("the pilot runner needs torch and transformers: pip install 'bayescale[runner]'") from exc
    return torch


# --------------------------------------------------------------------------- models


def _lstm_class():
    torch = require_torch()
    nn = torch.nn

    class LSTMLanguageModel(nn.Module):
        """An LSTM language model: ``n_layer`` LSTM layers of width ``d``, a linear projection, and the
        tied input/output embedding with an output bias (the LSTM's output is bounded by tanh, so the
        projection and bias let the logits grow as the model learns)."""

        def __init__(self, vocab_size: int, d_model: int, n_layer: int):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, d_model)
            self.lstm = nn.LSTM(d_model, d_model, num_layers=n_layer, batch_first=True)
            self.proj = nn.Linear(d_model, d_model)
            self.out_bias = nn.Parameter(torch.zeros(vocab_size))
            nn.init.normal_(self.embed.weight, std=0.02)

        def forward(self, input_ids, labels=None):
            h, _ = self.lstm(self.embed(input_ids))
            logits = self.proj(h) @ self.embed.weight.T + self.out_bias
            loss = None
            if labels is not None:
                loss = nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
                )
            return {"loss": loss, "logits": logits}

    return LSTMLanguageModel


def build_model(shape: Shape, seed: int = 0):
    """Build the pilot model of ``shape`` from a config, initialised with ``seed``.

    Llama and GPT-2 come from ``transformers`` configs (``LlamaConfig``, ``GPT2Config``) with tied
    embeddings and no dropout; the LSTM is :class:`LSTMLanguageModel` in plain torch.
    """
    torch = require_torch()
    torch.manual_seed(seed)
    if shape.arch == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(
            vocab_size=shape.vocab_size,
            hidden_size=shape.d_model,
            intermediate_size=shape.d_ff,
            num_hidden_layers=shape.n_layer,
            num_attention_heads=shape.n_head,
            num_key_value_heads=shape.n_head,
            max_position_embeddings=shape.seq_len,
            tie_word_embeddings=True,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=0,
            use_cache=False,
        )
        return LlamaForCausalLM(cfg)
    if shape.arch == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(
            vocab_size=shape.vocab_size,
            n_positions=shape.seq_len,
            n_embd=shape.d_model,
            n_layer=shape.n_layer,
            n_head=shape.n_head,
            n_inner=shape.d_ff,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            tie_word_embeddings=True,
            bos_token_id=0,
            eos_token_id=0,
            use_cache=False,
        )
        return GPT2LMHeadModel(cfg)
    if shape.arch == "lstm":
        return _lstm_class()(shape.vocab_size, shape.d_model, shape.n_layer)
    raise ShapeError(f"arch={shape.arch!r} is not supported; allowed: {list(ARCHES)}")


def count_params(model, arch: str) -> dict[str, int]:
    """Total, embedding and non-embedding parameters of a built model (tied weights counted once).

    Embedding parameters are the token embedding and, for GPT-2, the learned position embedding (for
    the LSTM, also its output bias over the vocabulary).
    """
    seen: dict[int, int] = {}
    for p in model.parameters():
        seen[id(p)] = p.numel()
    total = sum(seen.values())
    if arch == "lstm":
        emb = [model.embed.weight, model.out_bias]
    else:
        emb = [model.get_input_embeddings().weight]
        if arch == "gpt2":
            emb.append(model.transformer.wpe.weight)
    n_emb = sum(p.numel() for p in {id(p): p for p in emb}.values())
    return {"N_total": int(total), "N_embedding": int(n_emb), "N": int(total - n_emb)}


# --------------------------------------------------------------------------- data


def token_windows(tokens: np.ndarray, seq_len: int, limit: int | None = None):
    torch = require_torch()

    class TokenWindows(torch.utils.data.Dataset):
        """Non-overlapping windows of ``seq_len`` tokens; labels are the inputs (the model shifts them)."""

        def __init__(self):
            n = len(tokens) // seq_len
            self.n = n if limit is None else min(n, limit)
            self.seq_len = seq_len

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            x = torch.from_numpy(np.asarray(tokens[i * seq_len : (i + 1) * seq_len], dtype=np.int64))
            return {"input_ids": x, "labels": x}

    return TokenWindows()


__all__ = ["PilotError", "build_model", "count_params", "require_torch", "token_windows"]
