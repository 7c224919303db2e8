"""Public scaling-law run data, fetched on demand and checked against known hashes.

The data is not shipped with bayescale. Each registered file is downloaded from its
public origin (a GitHub raw URL at a pinned commit) with :mod:`pooch` and checked
against its SHA-256 hash. Downloads are cached in :func:`data_home`.

To use a local copy instead of the network, set the environment variable
``BAYESCALE_DATA`` to a directory with the layout ``<folder>/<file>``, for example
``chinchilla-epoch/svg_extracted_data.csv`` (the layout of the project's
``shared/data`` folder). When ``BAYESCALE_DATA`` is set, :func:`fetch` only looks
there and never falls back to the network.

Environment variables
---------------------
BAYESCALE_DATA
    Directory holding a local copy of the data (``<folder>/<file>`` layout).
BAYESCALE_CACHE
    Directory where downloads are cached. The default is
    ``pooch.os_cache("bayescale")``.

Examples
--------
>>> from bayescale.datasets import list_datasets
>>> "chinchilla-epoch" in list_datasets()
True
>>> from bayescale.datasets import load_chinchilla
>>> runs = load_chinchilla()  # doctest: +SKIP
>>> len(runs)  # doctest: +SKIP
240
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pooch

from bayescale.errors import DatasetError

__all__ = [
    "REGISTRY",
    "DatasetInfo",
    "data_home",
    "fetch",
    "list_datasets",
    "load_chinchilla",
    "load_datablations",
    "load_steplaw",
]

DATA_ENV = "BAYESCALE_DATA"
CACHE_ENV = "BAYESCALE_CACHE"


class DatasetInfo(NamedTuple):
    """Where a registered file lives and how to check it.

    Attributes
    ----------
    path : str
        Path relative to a local copy of the data, as ``"<folder>/<file>"``.
        Downloads are cached under the same path in :func:`data_home`.
    url : str
        Raw URL of the file in its origin repository, at a pinned commit.
    known_hash : str
        ``"sha256:<hex digest>"`` of the file.
    description : str
        One line saying what the file holds.
    """

    path: str
    url: str
    known_hash: str
    description: str


_EPOCH = (
    "https://raw.githubusercontent.com/epoch-research/analyzing-chinchilla/92258837425e1b5f2851d624287f0120583a3d0e"
)
_KYO = "https://raw.githubusercontent.com/kyo-takano/chinchilla/75e5858f6e7c5b60d1fab69f66258132347b060c"
_COLPRET = "https://raw.githubusercontent.com/IBM/ColPret/16f23bbe054277ddc4afd07a972dd7cfbe3f48c3"
_NSLPFN = "https://raw.githubusercontent.com/DongWooLee-Eli/nslpfn/10a5a60911a2a22ef453d8b4ddf1408b6a6075d9"
_STEPLAW = "https://raw.githubusercontent.com/step-law/steplaw/32a8f4cc50247695fb56cc6c9117abdf67c97763"

# Origins, commits and paths come from shared/data/<folder>/SOURCE.md. The SHA-256
# hashes were computed from the files in shared/data. Where SOURCE.md states an md5
# (chinchilla-epoch, both revisiting files), the md5 of those files matches it.
#
# Not registered, because SOURCE.md gives no origin file to download:
# - porian/isoflop_points.csv and porian/fit_results.csv. These were derived in
#   shared/data from pickles in formll/resolving-scaling-law-discrepancies; no
#   CSV with this content exists upstream. So there is no load_porian().
# - datablations/parametric_fit_final_losses.csv. It was transcribed from notebook
#   output in huggingface/datablations. The "datablations" entry below uses
#   IBM/ColPret's file with the same runs' final losses instead.
# - olmo-ladder/final_losses.csv and curves_c4.csv: derived in shared/data from 41
#   W&B exports in allenai/OLMo-ladder (one row per run); no single upstream file.
# - steplaw/dense_best_lr.csv (derived); load_steplaw() derives the same 17 rows
#   from the registered upstream grid instead.
# - nslpfn-extra/dd_curves.csv (derived from a pickle). The other nslpfn-extra
#   files have an origin but were not asked for yet.
REGISTRY: dict[str, DatasetInfo] = {
    "chinchilla-epoch": DatasetInfo(
        path="chinchilla-epoch/svg_extracted_data.csv",
        url=f"{_EPOCH}/data/svg_extracted_data.csv",
        known_hash="sha256:193478df4e90f040016431996c45682659306840ecdadf83cfb9cd5ca0aa1b30",
        description="Hoffmann et al. 2022 (Chinchilla) runs digitised by Epoch AI: N, C, final loss (245 runs)",
    ),
    "chinchilla-kyo": DatasetInfo(
        path="chinchilla-kyo/df.csv",
        url=f"{_KYO}/examples/llm/df.csv",
        known_hash="sha256:2ed2c412c6b408cb26896b92c0721fe9afa6515726b0db78c33db37cbf2816f9",
        description="Subset of the Epoch Chinchilla runs used by the `chinchilla` package: C, N, D, loss (234 runs)",
    ),
    "datablations": DatasetInfo(
        path="datablations/colpret_datablations_contour_losses.csv",
        url=f"{_COLPRET}/aggregated_eval/datablations_contour_losses.csv",
        known_hash="sha256:1241bdf3732b4f65d455c796951dce7b18b898d64709f86013914573035f8a5b",
        description="Muennighoff et al. 2023 final C4 losses of the data-constrained runs, via IBM/ColPret (229 runs)",
    ),
    "datablations-curves": DatasetInfo(
        path="datablations/colpret_datablations_losses.csv",
        url=f"{_COLPRET}/aggregated_eval/datablations_losses.csv",
        known_hash="sha256:b3c448c2cd1a17128e06ee3120a9c377c4e2bf649e09b2446db59f98ef957b48",
        description="Muennighoff et al. 2023 learning curves, via IBM/ColPret (9,260 points)",
    ),
    "datablations-code": DatasetInfo(
        path="datablations/colpret_datablations_code_losses.csv",
        url=f"{_COLPRET}/aggregated_eval/datablations_code_losses.csv",
        known_hash="sha256:6e93a1d6842c0699f0492450e433733f706f3c7db6a4385d4c571f6b4aaf257e",
        description="Muennighoff et al. 2023 code-mixing experiments, via IBM/ColPret (295 rows)",
    ),
    "gpt3-curves": DatasetInfo(
        path="gpt3-curves/extracted.csv",
        url=f"{_COLPRET}/raw_data/gpt3/extracted.csv",
        known_hash="sha256:ea73b550de60d8b278523fa69385df0c2892546f8820aea12b4d1fe2d4f98962",
        description="GPT-3 loss vs tokens (billions) for 8 sizes, digitised by IBM/ColPret (12,096 points)",
    ),
    "revisiting-lang": DatasetInfo(
        path="revisiting-benchmark/benchmark.lang.csv",
        url=f"{_NSLPFN}/data/benchmark.lang.csv",
        known_hash="sha256:63c346db00a66b692e1ea9a0f71a2f2b267e55f74be5b863a92e199dffbf0983",
        description="Alabdulmohsin et al. 2022 extrapolation benchmark, language "
        "curves (NMT, LM, BIG-bench; 1,398 points)",
    ),
    "revisiting-vision": DatasetInfo(
        path="revisiting-benchmark/benchmark.vision.csv",
        url=f"{_NSLPFN}/data/benchmark.vision.csv",
        known_hash="sha256:23b00692d71e58aa5a2a941e831d57688e0977fdcf5f5125ff7b64283b5d9e83",
        description="Alabdulmohsin et al. 2022 extrapolation benchmark, image classification curves (18,882 points)",
    ),
    "steplaw": DatasetInfo(
        path="steplaw/dense_lr_bs_loss.csv",
        url=f"{_STEPLAW}/data/dense_lr_bs_loss.csv",
        known_hash="sha256:9e46181076c04d450294d75dfe6f72adc416e231e154a07b337e378f9410002c",
        description="Li et al. 2025 (Step Law) dense lr x batch-size grid: N, D, lr, bs, smooth train loss (1,911 runs)",
    ),
}


def list_datasets() -> list[str]:
    """Names of the registered datasets.

    Returns
    -------
    list of str
        The names accepted by :func:`fetch`, sorted.

    Examples
    --------
    >>> from bayescale.datasets import list_datasets
    >>> list_datasets()[:2]
    ['chinchilla-epoch', 'chinchilla-kyo']
    """
    return sorted(REGISTRY)


def data_home() -> Path:
    """Directory where downloaded datasets are cached.

    Returns
    -------
    pathlib.Path
        ``$BAYESCALE_CACHE`` if that variable is set and not empty, otherwise
        ``pooch.os_cache("bayescale")``, the usual cache folder of the operating
        system. The directory is created on the first download, not here.

    Examples
    --------
    >>> from bayescale.datasets import data_home
    >>> data_home()  # doctest: +SKIP
    PosixPath('/home/user/.cache/bayescale')
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(pooch.os_cache("bayescale"))


def _info(name: str) -> DatasetInfo:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise DatasetError(f"unknown dataset {name!r}; available datasets: {', '.join(list_datasets())}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _fetch_local(name: str, info: DatasetInfo, root_env: str) -> Path:
    root = Path(root_env).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"{DATA_ENV}={root_env!r} is not a directory; it should name a local copy "
            f"of the data with the layout <folder>/<file>. Unset {DATA_ENV} to "
            "download the data instead."
        )
    path = root / info.path
    if not path.is_file():
        raise DatasetError(
            f"dataset {name!r}: file {info.path!r} is missing from {DATA_ENV}={root_env!r} "
            f"(looked for {path}). Add the file there (it can be downloaded from "
            f"{info.url}), or unset {DATA_ENV} to download it."
        )
    actual = _sha256(path)
    if actual != info.known_hash:
        raise DatasetError(
            f"dataset {name!r}: hash mismatch for {path}: expected {info.known_hash}, "
            f"got {actual}. The local copy differs from the registered file."
        )
    return path


def fetch(name: str) -> Path:
    """Path to a registered data file whose hash has been checked.

    If the ``BAYESCALE_DATA`` environment variable is set (and not empty), the file is
    read from that directory and nothing is downloaded. Otherwise the file is
    downloaded from its origin into :func:`data_home`, or taken from there if an
    earlier download is cached and still has the right hash.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets`.

    Returns
    -------
    pathlib.Path
        The file. Its SHA-256 hash matches the registered one.

    Raises
    ------
    DatasetError
        If `name` is unknown. Also if ``BAYESCALE_DATA`` is set but is not a directory,
        lacks the file, or holds a file with the wrong hash. Also if the download
        fails or the downloaded file has the wrong hash.

    Examples
    --------
    >>> from bayescale.datasets import fetch
    >>> path = fetch("chinchilla-epoch")  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'svg_extracted_data.csv'
    """
    info = _info(name)
    root_env = os.environ.get(DATA_ENV)
    if root_env:
        return _fetch_local(name, info, root_env)

    folder, _, fname = info.path.rpartition("/")
    cache = data_home() / folder if folder else data_home()
    try:
        path = pooch.retrieve(info.url, known_hash=info.known_hash, path=cache, fname=fname)
    except Exception as exc:
        raise DatasetError(
            f"could not fetch dataset {name!r} from {info.url}: "
            f"{type(exc).__name__}: {exc}. If there is no network access or the "
            f"download keeps failing, set {DATA_ENV} to a directory holding a local "
            f"copy of the data (layout <folder>/<file>, here {info.path!r})."
        ) from exc
    return Path(path)


def _read_csv(name: str, required: list[str]) -> pd.DataFrame:
    path = fetch(name)
    frame = pd.read_csv(path)
    missing = [col for col in required if col not in frame.columns]
    if missing:
        raise DatasetError(f"dataset {name!r} ({path}) lacks columns {missing}")
    return frame


def load_chinchilla(drop_highest: int = 5) -> pd.DataFrame:
    """Chinchilla runs (Hoffmann et al. 2022) as digitised by Epoch AI.

    Parameters
    ----------
    drop_highest : int, default 5
        Number of runs with the highest loss to drop. Epoch (Besiroglu et al. 2024)
        dropped 5, leaving 240 runs. With ties at the cut, rows later in the file
        are dropped first.

    Returns
    -------
    pandas.DataFrame
        One row per run, in file order, with a fresh ``RangeIndex``, and columns:

        - ``run_id``: ``"chinchilla-000"``, ``"chinchilla-001"``, ... numbered in
          file order *before* dropping, so an id always means the same run;
        - ``N``: parameters (the file's "Model Size");
        - ``D``: training tokens, ``C / (6 N)`` (the file has no token column);
        - ``C``: training FLOPs (the file's "Training FLOP");
        - ``loss``: final training loss, nats/token;
        - ``source``: ``"chinchilla-epoch"``.

    Raises
    ------
    DatasetError
        If `drop_highest` is not an integer in ``[0, number of runs)``, or the file
        cannot be fetched (see :func:`fetch`).

    Examples
    --------
    >>> from bayescale.datasets import load_chinchilla
    >>> runs = load_chinchilla()  # doctest: +SKIP
    >>> runs.shape  # doctest: +SKIP
    (240, 6)
    >>> runs.columns.tolist()  # doctest: +SKIP
    ['run_id', 'N', 'D', 'C', 'loss', 'source']
    """
    if isinstance(drop_highest, bool) or not isinstance(drop_highest, (int, np.integer)):
        raise DatasetError(f"drop_highest must be an integer, got {type(drop_highest).__name__}")
    name = "chinchilla-epoch"
    raw = _read_csv(name, ["Model Size", "Training FLOP", "loss"])
    if not 0 <= drop_highest < len(raw):
        raise DatasetError(f"drop_highest must be in [0, {len(raw)}), got {drop_highest}")
    n = raw["Model Size"].to_numpy(dtype=float)
    c = raw["Training FLOP"].to_numpy(dtype=float)
    runs = pd.DataFrame(
        {
            "run_id": [f"chinchilla-{i:03d}" for i in range(len(raw))],
            "N": n,
            "D": c / (6.0 * n),
            "C": c,
            "loss": raw["loss"].to_numpy(dtype=float),
            "source": name,
        }
    )
    if drop_highest:
        order = runs["loss"].sort_values(kind="stable").index
        runs = runs.drop(index=order[len(order) - drop_highest :])
    return runs.reset_index(drop=True)


# ColPret's contour file gives this run 55.1e9 tokens and 2.204 epochs. The run name
# and the datablations notebook table (shared/data/datablations,
# parametric_fit_final_losses.csv) say 55e9 tokens on 1.25e9 unique tokens, i.e.
# 44 epochs. Only the epoch count is corrected, as it is the one that defines U.
_DATABLATIONS_EPOCH_FIXES = {"2b855b1b25": 44.0}


def load_datablations() -> pd.DataFrame:
    """Final losses of the data-constrained runs of Muennighoff et al. 2023.

    Read from IBM/ColPret's ``datablations_contour_losses.csv``, which has the final
    C4 validation losses of the datablations runs (dataset ``"datablations"``).

    Returns
    -------
    pandas.DataFrame
        One row per run, in file order, with columns:

        - ``run_id``: ``"datablations-000"``, ... in file order;
        - ``run_name``: the datablations name, e.g. ``"2b84b4b"`` (2.8B parameters,
          4B tokens, 4B unique tokens);
        - ``N``: parameters; ``D``: tokens trained; ``C``: ``6 N D``, recomputed
          because ColPret's ``flops`` column is its own derivation;
        - ``loss``: final validation loss (the file's ``openLM_loss``), nats/token;
        - ``epochs``: passes over the unique data; ``unique_tokens``: ``D / epochs``.
          The file's ``tokens_per_epoch`` column is a constant and is not used.
          One row (``2b855b1b25``) has its epoch count corrected to 44;
        - ``data``: the corpus (``"c4"``);
        - ``source``: ``"datablations"``.

    Raises
    ------
    DatasetError
        If the file cannot be fetched (see :func:`fetch`) or lacks expected columns.

    Examples
    --------
    >>> from bayescale.datasets import load_datablations
    >>> runs = load_datablations()  # doctest: +SKIP
    >>> len(runs)  # doctest: +SKIP
    229
    """
    name = "datablations"
    raw = _read_csv(name, ["data", "epochs", "token_num", "openLM_loss", "num_params", "model_args"])
    run_name = raw["model_args"].astype(str).str.extract(r"'name':\s*'([^']+)'")[0]
    if run_name.isna().any():
        raise DatasetError(f"dataset {name!r}: some rows have no run name in model_args")
    epochs = raw["epochs"].to_numpy(dtype=float).copy()
    for bad_run, fixed in _DATABLATIONS_EPOCH_FIXES.items():
        epochs[(run_name == bad_run).to_numpy()] = fixed
    n = raw["num_params"].to_numpy(dtype=float)
    d = raw["token_num"].to_numpy(dtype=float)
    return pd.DataFrame(
        {
            "run_id": [f"datablations-{i:03d}" for i in range(len(raw))],
            "run_name": run_name.tolist(),
            "N": n,
            "D": d,
            "C": 6.0 * n * d,
            "loss": raw["openLM_loss"].to_numpy(dtype=float),
            "epochs": epochs,
            "unique_tokens": d / epochs,
            "data": raw["data"].tolist(),
            "source": name,
        }
    )


def load_steplaw(best_lr: bool = True) -> pd.DataFrame:
    """Step Law runs (Li et al. 2025, arXiv:2503.04715): dense LMs on a learning-rate x batch-size grid.

    Read from ``data/dense_lr_bs_loss.csv`` of step-law/steplaw (1,911 runs in 17 (N, D) cells,
    about 12 learning rates x 10 batch sizes each). The repository states no licence; cite the
    paper and do not redistribute the data.

    Parameters
    ----------
    best_lr : bool, default True
        Keep, per (N, D) cell, only the run with the lowest smoothed loss: the best
        learning rate and batch size of the grid (17 runs; there are no ties). This is a
        scaling-law table of tuned runs. ``False`` returns every run, diverged ones included
        (181 runs have a smoothed loss above 4).

    Returns
    -------
    pandas.DataFrame
        Sorted by ``(N, D)``, with columns:

        - ``run_id``: ``"steplaw-000"``, ... numbered in file order, so an id always means
          the same run;
        - ``N``: **non-embedding** parameters, ``numl (4 h^2 + 3 h ffnh)`` (attention and
          SwiGLU matrices; no embedding, head or norms), as the file gives it;
        - ``D``: training tokens (nominal, 4e9 ... 1e11); ``C``: ``6 N D``;
        - ``loss``: the **smoothed final training loss** (the file's ``smooth loss``, a
          Gaussian filter of the logged curve read at the last step), nats/token. It is what
          the paper fits; the raw last logged value is ``loss_last``;
        - ``lr``, ``bs`` (sequences of 2048 tokens), ``bs_tokens``, ``exp_name``;
        - ``source``: ``"steplaw"``.

    Raises
    ------
    DatasetError
        If the file cannot be fetched (see :func:`fetch`) or lacks expected columns.

    Examples
    --------
    >>> from bayescale.datasets import load_steplaw
    >>> runs = load_steplaw()  # doctest: +SKIP
    >>> len(runs)  # doctest: +SKIP
    17
    """
    name = "steplaw"
    raw = _read_csv(name, ["N", "D", "lr", "bs", "loss", "smooth loss", "exp_name"])
    n = raw["N"].to_numpy(dtype=float)
    d = raw["D"].to_numpy(dtype=float)
    runs = pd.DataFrame(
        {
            "run_id": [f"steplaw-{i:03d}" for i in range(len(raw))],
            "N": n,
            "D": d,
            "C": 6.0 * n * d,
            "loss": raw["smooth loss"].to_numpy(dtype=float),
            "loss_last": raw["loss"].to_numpy(dtype=float),
            "lr": raw["lr"].to_numpy(dtype=float),
            "bs": raw["bs"].to_numpy(dtype=float),
            "bs_tokens": 2048.0 * raw["bs"].to_numpy(dtype=float),
            "exp_name": raw["exp_name"].astype(str).tolist(),
            "source": name,
        }
    )
    if best_lr:
        runs = runs.loc[runs.groupby(["N", "D"])["loss"].idxmin()]
    return runs.sort_values(["N", "D"], kind="stable").reset_index(drop=True)
