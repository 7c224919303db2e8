"""Text corpora, the locally trained BPE tokenizer, and the token streams pilots train on.

Three sources:

- ``"stdlib"``: the Python standard library's own source (and its docstrings) of the running
  interpreter, every ``*.py`` file under ``sysconfig``'s stdlib path except ``site-packages``. About
  30 MB of real text on every machine with no download and no file in this repository.
- local text files: a file, a folder (every ``*.txt``, ``*.md``, ``*.py``, ``*.rst`` under it) or a glob.
- ``"hf:NAME[:CONFIG]"``: a Hugging Face ``datasets`` dataset's ``train`` split and ``text`` column
  (for users who have a hub; ``datasets`` is not a dependency).

Each source is a list of documents in a fixed order. Documents whose SHA-1 of their name falls in
:data:`HELDOUT_FRACTION` form the held-out split; the rest are the training split. A byte-level BPE
tokenizer (``tokenizers``) is trained on the training split and cached by the corpus hash and the
vocabulary size, and both splits are tokenized once into ``uint16`` arrays cached the same way. A
process that needs them while another builds them (a sweep's first pilots start together) waits for
that one, under a lock beside the tokenizer, and reads its files.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from .._io import atomic_write, atomic_write_bytes, held_elsewhere, locked
from ..errors import BayescaleError

#: Share of documents (by a hash of their name) held out for evaluation.
HELDOUT_FRACTION = 1 / 32
TEXT_SUFFIXES = (".txt", ".md", ".py", ".rst")
SPECIAL = "<|endoftext|>"
SPLITS = ("train", "heldout")


class CorpusError(BayescaleError):
    """A text source that cannot be read or is too small."""


def cache_dir() -> Path:
    """Where tokenizers, token arrays and pilot checkpoints are cached: ``$BAYESCALE_CACHE`` or
    the user cache folder (``platformdirs``)."""
    env = os.environ.get("BAYESCALE_CACHE")
    if env:
        return Path(env)
    return Path(platformdirs.user_cache_dir("bayescale"))


def _stdlib_docs() -> list[tuple[str, str]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("site-packages/", "dist-packages/")) or "/site-packages/" in rel:
            continue
        try:
            docs.append((rel, path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, OSError):
            continue  # a few test files are deliberately not UTF-8
    return docs


def _file_docs(source: str) -> list[tuple[str, str]]:
    p = Path(source).expanduser()
    if p.is_file():
        paths = [p]
    elif p.is_dir():
        paths = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix in TEXT_SUFFIXES)
    else:
        paths = sorted(Path(q) for q in glob.glob(os.path.expanduser(source), recursive=True) if Path(q).is_file())
    if not paths:
        raise CorpusError(
            f"corpus {source!r} is not 'stdlib', an 'hf:NAME' dataset, a text file, a folder of "
            f"{'/'.join(TEXT_SUFFIXES)} files or a glob matching files"
        )
    # Documents are named relative to the corpus (not by absolute path), so the held-out split and
    # the corpus hash are the same wherever the folder is copied to.
    root = p if p.is_dir() else Path(os.path.commonpath([q.parent for q in paths]))
    docs = []
    for q in paths:
        try:
            docs.append((q.relative_to(root).as_posix(), q.read_text(encoding="utf-8")))
        except UnicodeDecodeError as exc:
            raise CorpusError(f"corpus file {str(q)!r} is not UTF-8 text: {exc}") from exc
    return docs


def _hf_docs(source: str) -> list[tuple[str, str]]:
    try:
        import datasets  # optional: not a dependency (only for hf: corpora)
    except ImportError as exc:  # pragma: no cover - depends on the user's environment
        raise CorpusError(f"corpus {source!r} needs the `datasets` package: pip install datasets") from exc
    name, _, config = source[3:].partition(":")
    ds = datasets.load_dataset(name, config or None, split="train")
    if "text" not in ds.column_names:
        raise CorpusError(f"dataset {name!r} has no 'text' column; columns: {ds.column_names}")
    return [(f"{name}/{i}", t) for i, t in enumerate(ds["text"]) if t]


@dataclass(frozen=True)
class Corpus:
    """A text source split into training and held-out documents, with its hash."""

    name: str
    train: tuple[str, ...]
    heldout: tuple[str, ...]
    sha256: str
    n_chars: int

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


def _is_heldout(name: str) -> bool:
    h = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return h < HELDOUT_FRACTION * 2**32


def load_corpus(source: str = "stdlib") -> Corpus:
    """Read a text source (see the module docstring) and split it into train and held-out documents.

    Examples
    --------
    >>> c = load_corpus("stdlib")  # doctest: +SKIP
    >>> c.n_chars > 10_000_000  # doctest: +SKIP
    True
    """
    if not isinstance(source, str) or not source:
        raise CorpusError(f"corpus must be 'stdlib', 'hf:NAME' or a path, not {source!r}")
    if source == "stdlib":
        docs = _stdlib_docs()
    elif source.startswith("hf:"):
        docs = _hf_docs(source)
    else:
        docs = _file_docs(source)
    h = hashlib.sha256()
    for name, text in docs:
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    train = tuple(t for n, t in docs if not _is_heldout(n))
    heldout = tuple(t for n, t in docs if _is_heldout(n))
    if not heldout and len(train) > 1:  # tiny corpora: hold out the last document
        train, heldout = train[:-1], train[-1:]
    if not train or not heldout:
        raise CorpusError(f"corpus {source!r} needs at least two documents (one is held out); it has {len(docs)}")
    return Corpus(source, train, heldout, h.hexdigest(), sum(len(t) for _, t in docs))


_atomic_bytes = atomic_write_bytes


def train_tokenizer(corpus: Corpus, vocab_size: int = 2048):
    """A byte-level BPE tokenizer trained on the corpus's training split, cached by corpus hash.

    Returns a ``tokenizers.Tokenizer``; ``<|endoftext|>`` (id 0) separates documents.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # the runner extra

    if not (isinstance(vocab_size, int) and 256 + 1 <= vocab_size <= 65535):
        raise CorpusError(f"vocab_size={vocab_size!r} must be an integer in [257, 65535] (tokens are stored as uint16)")
    path = _tokenizer_path(corpus, vocab_size)
    if path.exists():
        return Tokenizer.from_file(str(path))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus.train, trainer=trainer, length=len(corpus.train))
    _atomic_bytes(path, tok.to_str().encode())
    return tok


def tokenizer_hash(tok) -> str:
    """SHA-256 (first 12 hex digits) of the tokenizer's JSON."""
    return hashlib.sha256(tok.to_str().encode()).hexdigest()[:12]


def _encode(tok, docs: Iterable[str]) -> np.ndarray:
    eot = tok.token_to_id(SPECIAL)
    out: list[np.ndarray] = []
    docs = list(docs)
    for i in range(0, len(docs), 256):
        # ``_fast`` skips the character offsets nothing here reads: the same ids in about 2/3 of the time.
        for enc in tok.encode_batch_fast(docs[i : i + 256]):
            out.append(np.asarray(enc.ids, dtype=np.uint16))
            out.append(np.asarray([eot], dtype=np.uint16))
    return np.concatenate(out) if out else np.zeros(0, np.uint16)


@dataclass(frozen=True)
class TokenStreams:
    """The tokenized splits of a corpus (``uint16`` arrays) and what produced them."""

    train: np.ndarray
    heldout: np.ndarray
    corpus: str
    corpus_hash: str
    tokenizer_hash: str
    vocab_size: int
    tokenizer_path: str

    def unigram_entropy(self) -> float:
        """Entropy (nats per token) of the training split's token frequencies: the loss of the best
        model that ignores context. A trained pilot should beat it on the held-out split."""
        counts = np.bincount(self.train, minlength=self.vocab_size).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum())


def token_streams(source: str = "stdlib", vocab_size: int = 2048) -> TokenStreams:
    """Load, tokenize and cache a corpus; the tokenizer is trained on first use.

    Cached on disk by corpus hash and in memory for the life of the process (a corpus changed on disk
    is seen by the next process).

    Examples
    --------
    >>> s = token_streams("stdlib")  # doctest: +SKIP
    >>> s.train.dtype, s.vocab_size  # doctest: +SKIP
    (dtype('uint16'), 2048)
    """
    return _token_streams(source, vocab_size, str(cache_dir()))


@functools.lru_cache(maxsize=8)
def _token_streams(source: str, vocab_size: int, cache: str) -> TokenStreams:
    corpus = load_corpus(source)
    tpath = _tokenizer_path(corpus, vocab_size)
    built = _built(corpus, tpath)  # a filled cache is only read: it may be read-only (a shared mount)
    if built is None:
        # One process builds what is missing while the others wait and then read it: a sweep's first pilots
        # (or a test run's workers) starting together would otherwise each train and encode the same corpus.
        if held_elsewhere(tpath.with_suffix("")):
            print(f"corpus {source!r}: another process is building its tokens; waiting for it", file=sys.stderr)
        with locked(tpath.with_suffix("")):
            tok = train_tokenizer(corpus, vocab_size)
            th = tokenizer_hash(tok)
            paths = _token_paths(corpus, th)
            for split, docs in (("train", corpus.train), ("heldout", corpus.heldout)):
                if not paths[split].exists():
                    _save_array(paths[split], _encode(tok, docs))
        built = (tok, th, paths)
    tok, th, paths = built
    arrays = {split: np.load(path, mmap_mode="r") for split, path in paths.items()}
    return TokenStreams(arrays["train"], arrays["heldout"], source, corpus.sha256, th, tok.get_vocab_size(), str(tpath))


def _save_array(path: Path, arr: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would add ".npy" to the temporary name
            np.save(fh, arr)

    atomic_write(path, write)


def _tokenizer_path(corpus: Corpus, vocab_size: int) -> Path:
    return cache_dir() / "tokenizers" / f"{corpus.short_hash}-bpe{vocab_size}.json"


def _token_paths(corpus: Corpus, tokenizer: str) -> dict[str, Path]:
    return {split: cache_dir() / "tokens" / f"{corpus.short_hash}-{tokenizer}-{split}.npy" for split in SPLITS}


def _built(corpus: Corpus, tpath: Path) -> tuple[Any, str, dict[str, Path]] | None:
    """The cached tokenizer, its hash and the paths of its token arrays, when all of them are on disk."""
    if not tpath.exists():
        return None
    from tokenizers import Tokenizer  # the runner extra

    tok = Tokenizer.from_file(str(tpath))
    th = tokenizer_hash(tok)
    paths = _token_paths(corpus, th)
    return (tok, th, paths) if all(p.exists() for p in paths.values()) else None


def describe(streams: TokenStreams) -> str:
    """One line: corpus, hash, token counts."""
    return (
        f"corpus {streams.corpus!r} ({streams.corpus_hash[:12]}): {len(streams.train):,} training and "
        f"{len(streams.heldout):,} held-out tokens, BPE vocabulary {streams.vocab_size}"
    )


def _json(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def config_hash(config: dict) -> str:
    """SHA-256 (12 hex digits) of a config dict's canonical JSON."""
    return hashlib.sha256(_json(config).encode()).hexdigest()[:12]


__all__ = [
    "Corpus",
    "CorpusError",
    "TokenStreams",
    "cache_dir",
    "config_hash",
    "describe",
    "load_corpus",
    "token_streams",
    "tokenizer_hash",
    "train_tokenizer",
]
