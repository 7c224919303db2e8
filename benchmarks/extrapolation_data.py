"""The runs tables of the issue-15 extrapolation benchmark, one adapter per public dataset.

Every adapter returns a runs table with ``run_id, N, D, C, loss`` (``loss`` in nats per token,
``C = 6 N D`` everywhere so that "compute" orders runs the same way in every dataset) and, for
datablations, ``U`` (unique tokens; epochs = D / U). Registered, hash-checked public loaders of
:mod:`bayescale.datasets` are used where the file has an upstream origin (Chinchilla, datablations,
GPT-3 curves, Step Law). The OLMo ladder and Porian et al. tables were *derived* in the project's
shared data folder from many upstream exports or from pickles, so there is no upstream URL to
register: their adapters live here, read the shared folder and check the file's SHA-256 against
the value below (the hash of the files as SOURCE.md describes them).

``load_all(data_dir)`` returns ``name -> Dataset``; the benchmark splits each table in compute,
except that the OLMo ladder also has a fixed split (the ladder runs -> the 7B and 13B targets).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale.datasets import fetch, load_chinchilla, load_datablations, load_steplaw

REPO = Path(__file__).resolve().parents[1]

#: SHA-256 of the derived files read directly (no upstream file to register in bayescale.datasets).
DERIVED_SHA256 = {
    "olmo-ladder/final_losses.csv": "99789c336424c387bccb8ad52acf2f3bdec75277ca90bf2702dd31b372d0d1a0",
    "porian/isoflop_points.csv": "3dd9ed4c1e20d56356ff5858f902925999fbf2400efc28c5e23c8ed610db2009",
}

# GPT-3 model sizes, Brown et al. 2020, Table 2.1 (n_params); the curve names are those of the CSV.
GPT3_N = {
    "small": 125e6,
    "medium": 350e6,
    "large": 760e6,
    "xl": 1.3e9,
    "2.7b": 2.7e9,
    "6.7b": 6.7e9,
    "13b": 13.0e9,
    "175b": 175.0e9,
}
GPT3_D_MIN, GPT3_D_MAX, GPT3_PER_SIZE = 20e9, 295e9, 20
PORIAN_KEYS = ["source_file", "dataset", "hparams", "warmup", "decay", "param_count", "val"]
#: --quick: the first and the last step of Porian et al.'s path from Kaplan's to Chinchilla's exponent (RefinedWeb).
PORIAN_QUICK = [
    ("summary_df", "rw", "base", "long", "kaplan", "kaplan", "train"),
    ("summary_df", "rw", "tuned", "short", "const", "standard", "val"),
]


@dataclass
class Dataset:
    """One benchmark row source: a runs table and how it was made.

    ``fixed``: named fixed splits ``name -> (train run ids, test run ids)`` besides the compute splits.
    """

    name: str
    runs: pd.DataFrame
    group: str
    note: str
    fixed: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    compute_splits: bool = True


def _checked_csv(data: Path, rel: str) -> pd.DataFrame:
    path = data / rel
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != DERIVED_SHA256[rel]:
        raise ValueError(f"{path}: sha256 {digest} differs from the benchmark's {DERIVED_SHA256[rel]}")
    return pd.read_csv(path)


def _table(run_id: Any, n: Any, d: Any, loss: Any, **extra: Any) -> pd.DataFrame:
    n, d = np.asarray(n, float), np.asarray(d, float)
    t = pd.DataFrame({"run_id": list(run_id), "N": n, "D": d, "C": 6.0 * n * d, "loss": np.asarray(loss, float)})
    for k, v in extra.items():
        t[k] = v
    return t


def chinchilla() -> Dataset:
    """Epoch's digitised Hoffmann et al. runs (``load_chinchilla``: 240, the 5 highest losses dropped as
    Epoch did). N: all parameters as the figure gives them; D = C / 6N; loss: final training loss, nats."""
    ch = load_chinchilla()
    return Dataset(
        "chinchilla",
        _table(ch["run_id"], ch["N"], ch["D"], ch["loss"]),
        "chinchilla",
        f"Epoch's digitised Hoffmann runs, {len(ch)}",
    )


def gpt3() -> Dataset:
    """GPT-3 learning curves (Brown et al. 2020, digitised by ColPret), as points along each curve.

    As the earlier harness: per size, 20 log-spaced token counts from 20B to 295B; each point is the
    median of the digitised ``val_loss`` points within its log-D bin (the file's ``train_loss`` is a
    second series ~0.04 nats lower; D < 20B, the early transient, is left out). N: Brown et al.'s
    Table 2.1 parameter counts (with embeddings). Loss in nats. Points of one curve share a run, so they
    are not independent runs: the benchmark treats them as runs, as the earlier harness did.
    """
    g = pd.read_csv(fetch("gpt3-curves"))
    grid = np.exp(np.linspace(math.log(GPT3_D_MIN), math.log(GPT3_D_MAX), GPT3_PER_SIZE))
    half = 0.5 * (math.log(grid[1]) - math.log(grid[0]))
    rows = []
    for name, n in GPT3_N.items():
        c = g[(g["model"] == name) & g["val_loss"].notna()]
        logd = np.log(c["step"].to_numpy(float) * 1e9)
        loss = c["val_loss"].to_numpy(float)
        for k, d in enumerate(grid):
            sel = np.abs(logd - math.log(d)) <= half
            if sel.any():
                rows.append(
                    (f"gpt3-{name}-{k:02d}", n, float(np.exp(np.median(logd[sel]))), float(np.median(loss[sel])))
                )
    r = list(zip(*rows))
    t = _table(r[0], r[1], r[2], r[3])
    return Dataset(
        "gpt3", t, "gpt3", f"{len(t)} points along the 8 curves (val_loss, 20 log-spaced D per size, 20B-295B)"
    )


def porian(data: Path, quick: bool = False) -> list[Dataset]:
    """Porian et al. 2024 isoFLOP points, one dataset per configuration (15; ``quick``: 2).

    Read from the shared folder's derived ``porian/isoflop_points.csv`` (hash-checked; no upstream
    CSV exists). N: ``n_params`` as the configuration counts it (``param_count``: kaplan =
    non-embedding, standard = with the head, attention = with attention FLOPs, as in the paper);
    D: ``tokens`` (= C/6N); loss: the interpolated ``loss`` at the budget, train or validation loss as
    the configuration's ``val`` column says (nats; the paper's units).
    """
    p = _checked_csv(data, "porian/isoflop_points.csv")
    out = []
    for key, sub in p.groupby(PORIAN_KEYS, sort=True):
        key = tuple(key)
        if quick and key not in PORIAN_QUICK:
            continue
        label = "porian:" + "/".join(key[1:])
        t = _table([f"porian-{i:03d}" for i in range(len(sub))], sub["n_params"], sub["tokens"], sub["loss"])
        out.append(Dataset(label, t, "porian", f"{key[0]} {'/'.join(key[1:])}: {len(t)} isoFLOP points"))
    return out


def datablations() -> Dataset:
    """Muennighoff et al. 2023 final C4 validation losses (``load_datablations``, ColPret's file, 229 runs),
    all of them, repeated-data runs included, with ``U`` = unique tokens (``D / epochs``). N: all
    parameters; loss in nats."""
    db = load_datablations()
    t = _table(db["run_name"], db["N"], db["D"], db["loss"], U=db["unique_tokens"].to_numpy(float))
    if not t["run_id"].is_unique:
        t["run_id"] = db["run_id"]
    n_rep = int((t["U"] < t["D"] * (1 - 1e-9)).sum())
    return Dataset("datablations", t, "datablations", f"{len(t)} runs, {n_rep} with repeated data (U < D)")


def olmo_ladder(data: Path) -> Dataset:
    """The OLMo ladder (Bhagia et al. 2024) and its 7B-4T and 13B-5T targets.

    Read from the shared folder's derived ``olmo-ladder/final_losses.csv`` (hash-checked; it was
    assembled from 41 W&B exports, no single upstream file). N: the repo's ``MODEL_PARAMS``, OLMo's
    "non-embedding" count, which leaves out the input embedding but **includes the untied output
    head** (what the paper fits). D: step x batch tokens. C: 6ND here (the repo's C, with attention
    FLOPs, is 1.15-1.67x that; kept as ``C_repo``). Loss: C4 (c4_en) validation cross-entropy in nats,
    the mean of the last 5 evaluations (the paper's ``--moving_avg 5`` point; 13B-5T: 2.437876), or
    the single final value where a run has one evaluation (the 7B anneal, 2.482918).

    Rows: the 30 ladder runs (190M-3B x 0.5-10xC, with the 1xC reruns) and the two targets. The fixed
    split ``targets`` fits all ladder runs and predicts the targets; the compute splits use the ladder
    runs only (the targets and the other 7B runs are left out of them).
    """
    o = _checked_csv(data, "olmo-ladder/final_losses.csv")
    o = o[o["role"].isin(["ladder", "target"])].reset_index(drop=True)
    loss = o["c4_en_last5_mean"].fillna(o["loss_c4_en"])
    rid = np.where(o["role"] == "target", "olmo-" + o["target_label"].astype(str), "olmo-" + o["run"].astype(str))
    t = _table(rid, o["N"], o["D"], loss, C_repo=o["C"].to_numpy(float), role=o["role"].tolist())
    ladder = t.loc[t["role"] == "ladder", "run_id"].tolist()
    targets = t.loc[t["role"] == "target", "run_id"].tolist()
    return Dataset(
        "olmo-ladder",
        t,
        "olmo",
        f"{len(ladder)} ladder runs (190M-3B) -> targets {', '.join(targets)}; C4 loss",
        fixed={"targets": (ladder, targets)},
    )


def steplaw() -> Dataset:
    """Step Law (Li et al. 2025): the best-learning-rate run of each of the 17 (N, D) cells
    (``load_steplaw``). N: non-embedding; loss: the smoothed final *training* loss (what the paper
    fits), nats."""
    s = load_steplaw()
    return Dataset(
        "steplaw",
        _table(s["run_id"], s["N"], s["D"], s["loss"]),
        "steplaw",
        f"{len(s)} best-lr runs, one per (N, D) cell",
    )


def pilot() -> Dataset:
    """The committed pilot sweep ``data/pilot_runs.csv`` (29 CPU-trained Llama-style decoders):
    non-embedding N, held-out next-token loss in nats; C = 6ND."""
    p = pd.read_csv(REPO / "data" / "pilot_runs.csv")
    t = _table(p["run_id"], p["N"], p["D"], p["loss"])
    return Dataset("pilot", t, "pilot", f"{len(t)} pilot runs, N 1.3e4-4.7e5")


def load_all(data: Path, quick: bool = False) -> dict[str, Dataset]:
    """Every benchmark dataset, in table order (``BAYESCALE_DATA`` is pointed at ``data``)."""
    os.environ["BAYESCALE_DATA"] = str(data)
    sets = [chinchilla(), gpt3(), *porian(data, quick), datablations(), olmo_ladder(data), steplaw(), pilot()]
    for s in sets:
        s.runs = s.runs.copy()
        s.runs["run_id"] = s.runs["run_id"].astype(str)
    return {s.name: s for s in sets}


def compute_runs(ds: Dataset) -> pd.DataFrame:
    """The runs the compute splits use (for the OLMo ladder: the ladder runs only)."""
    if "role" in ds.runs:
        return ds.runs[ds.runs["role"] == "ladder"].reset_index(drop=True)
    return ds.runs
