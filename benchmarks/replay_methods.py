"""The designs of the issue-16 replay benchmark (``bench_replay.py``): which recorded runs to reveal.

Every design sees the candidate runs' ``N, D, C`` (never their losses until it reveals them) and the
target region's ``N, D`` (never its losses), and returns the run ids it chose in order. Fixed designs
give an order and :func:`take` spends it; the two adaptive baselines (V-optimal and the MSPE-style
method) reveal one run at a time through an :class:`Oracle`, which refuses the target runs.

The adaptive baselines use their own fast point fits of the Chinchilla law in log space (the Epoch
Huber recipe of ``baselines.py``: screened starts, L-BFGS-B), so that a refit after every revealed run
costs milliseconds; the *evaluation* of every design is the same bayescale fit (``bench_replay.py``).
On datablations they select with the Chinchilla form, ignoring ``U``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import baselines as bl
import numpy as np
import pandas as pd

COST_POWER = 0.4  # score / cost**0.4: the MSPE method's cost normalisation (Li et al. 2026), used by V-optimal too
PRIOR_SD = 10.0  # vague Gaussian prior sd on (a, b, e, alpha, beta): keeps the covariance finite with few runs
MODE_STARTS = 8  # multi-start fits per refit
MAX_MODES = 6
OUTCOME_Z = np.array([-1.73, -1.0, -0.43, 0.0, 0.43, 1.0, 1.73])  # outcome quadrature for the mode weights
RATIO_TOLERANCE = 2.0  # a ladder rung is the run nearest the ratio, within this factor
LADDER_BIN, ISOFLOP_BIN, ISOFLOP_PER_LEVEL = 0.1, 0.25, 4  # decades of N, decades of C, runs per level


class TargetRevealed(RuntimeError):
    """A design asked for the loss of a run it may not see (a target, or a run not in the pool)."""


class Oracle:
    """Reveals the recorded loss of a candidate run; the target runs are never revealed."""

    def __init__(self, candidates: pd.DataFrame, losses: pd.Series) -> None:
        self._loss = {str(r): float(losses[r]) for r in candidates["run_id"]}
        self.revealed: list[str] = []

    def reveal(self, run_id: str) -> float:
        if run_id not in self._loss:
            raise TargetRevealed(f"run {run_id!r} is not a candidate of this pool")
        self.revealed.append(run_id)
        return self._loss[run_id]


def take(order: Sequence[str], costs: dict[str, float], budget: float, spent: float) -> list[str]:
    """Runs of ``order`` in turn, skipping any that would take the spend above ``budget``."""
    out, seen = [], set()
    for rid in order:
        if rid in seen:
            continue
        c = costs[rid]
        if spent + c <= budget * (1 + 1e-9):
            out.append(rid)
            seen.add(rid)
            spent += c
    return out


# ------------------------------------------------------------------ fixed orders


def cheapest_order(cand: pd.DataFrame) -> list[str]:
    return cand.sort_values(["C", "run_id"], kind="stable")["run_id"].tolist()


def random_order(cand: pd.DataFrame, seed: int) -> list[str]:
    ids = sorted(cand["run_id"].tolist())
    return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]


def ladder_order(cand: pd.DataFrame, ratio: float) -> list[str]:
    """Per 0.1-decade bin of N (ascending), the run nearest ``ratio`` tokens per parameter, if within 2x."""
    c = cand.assign(nbin=np.floor(np.log10(cand["N"]) / LADDER_BIN), off=np.abs(np.log(cand["D"] / cand["N"] / ratio)))
    c = c[c["off"] <= math.log(RATIO_TOLERANCE)]
    best = c.sort_values(["nbin", "off", "run_id"], kind="stable").groupby("nbin", sort=True).head(1)
    return best["run_id"].tolist()


def isoflop_order(cand: pd.DataFrame) -> list[str]:
    """Per 0.25-decade level of compute (ascending), up to 4 runs spread evenly over log N."""
    c = cand.assign(level=np.floor(np.log10(cand["C"]) / ISOFLOP_BIN)).sort_values(["level", "N", "run_id"])
    out = []
    for _, lev in c.groupby("level", sort=True):
        ids = lev["run_id"].tolist()
        k = min(ISOFLOP_PER_LEVEL, len(ids))
        picks = sorted({int(round(x)) for x in np.linspace(0, len(ids) - 1, k)})
        out += [ids[i] for i in picks]
    return out


# ------------------------------------------------------------------ point fits and their modes


@dataclass(frozen=True)
class Mode:
    theta: np.ndarray  # (a, b, e, alpha, beta)
    cov: np.ndarray  # linearised posterior covariance of theta
    weight: float


def law_gradient(theta: np.ndarray, logN: np.ndarray, logD: np.ndarray) -> np.ndarray:
    """d log L / d theta at each point, shape (n, 5)."""
    a, b, e, al, be = theta
    t = np.stack([a - al * logN, b - be * logD, np.full_like(logN, e)])
    p = np.exp(t - t.max(axis=0))
    p /= p.sum(axis=0)
    return np.stack([p[0], p[1], p[2], -p[0] * logN, -p[1] * logD], axis=1)


def fit_modes(
    logN: np.ndarray, logD: np.ndarray, y: np.ndarray, probe: tuple[np.ndarray, np.ndarray], max_modes: int = MAX_MODES
) -> tuple[list[Mode], float]:
    """Distinct optima of multi-start Huber fits, weighted by their Gaussian likelihood, and the noise variance.

    The noise variance is the best fit's squared log residuals over ``n - 5`` (at least 1e-4**2); a
    mode's weight is ``exp(-SSR / 2 sigma^2)`` normalised, so a start that found a clearly worse optimum
    carries ~0 weight. Two optima are one mode when their predictions at the ``probe`` points (the
    target region) agree within 1e-3 in log loss: with few runs the fits have flat directions (E -> 0
    and a large alpha) that change the parameters but not the predictions.
    """
    found = []
    for x0 in bl.screened_starts(logN, logD, y, k=MODE_STARTS):
        res = bl.lbfgs(x0, logN, logD, y)
        th = np.asarray(res.x, float)
        r = bl.log_law(th, logN, logD) - y
        if np.all(np.isfinite(r)):
            found.append((float(r @ r), th))
    found.sort(key=lambda t: t[0])
    ssr0 = found[0][0]
    sigma2 = max(ssr0 / max(len(y) - 5, 1), 1e-8)
    distinct: list[tuple[float, np.ndarray]] = []
    preds: list[np.ndarray] = []
    for ssr, th in found:
        f = bl.log_law(th, *probe)
        if all(np.max(np.abs(f - f2)) > 1e-3 for f2 in preds):
            distinct.append((ssr, th))
            preds.append(f)
    distinct = distinct[:max_modes]
    logw = np.array([-(s - ssr0) / (2 * sigma2) for s, _ in distinct])
    w = np.exp(logw - logw.max())
    w /= w.sum()
    modes = []
    for (_, th), wi in zip(distinct, w):
        J = law_gradient(th, logN, logD)
        prec = J.T @ J / sigma2 + np.eye(5) / PRIOR_SD**2
        modes.append(Mode(th, np.linalg.inv(prec), float(wi)))
    return [m for m in modes if m.weight > 1e-6], sigma2


def variance_reduction(
    mode: Mode, g_target: np.ndarray, j_cand: np.ndarray, sigma2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate: mean over targets of the drop in linearised variance, and the outcome variance."""
    u = g_target @ mode.cov @ j_cand.T  # (T, C)
    s = sigma2 + np.einsum("ci,ij,cj->c", j_cand, mode.cov, j_cand)
    return (u * u).mean(axis=0) / s, s


def mspe_scores(
    modes: list[Mode], sigma2: float, tgt: tuple[np.ndarray, np.ndarray], cnd: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Expected drop of the target region's mean squared prediction error per candidate.

    The error of the mixture's mean prediction is within-mode variance plus between-mode spread. A
    candidate's outcome shrinks each mode's covariance (rank one) and reweights the modes by how well
    each predicted it; the expectation over outcomes uses a 7-point quadrature of each mode's predictive.
    """
    w = np.array([m.weight for m in modes])
    f_t = np.stack([bl.log_law(m.theta, *tgt) for m in modes])  # (M, T)
    f_c = np.stack([bl.log_law(m.theta, *cnd) for m in modes])  # (M, C)
    red, s = zip(
        *(variance_reduction(m, law_gradient(m.theta, *tgt), law_gradient(m.theta, *cnd), sigma2) for m in modes)
    )
    red, s = np.stack(red), np.stack(s)  # (M, C)
    mu = w @ f_t
    between_now = float((w[:, None] * (f_t - mu) ** 2).mean(axis=1).sum())
    within_drop = (w[:, None] * red).sum(axis=0)
    if len(modes) == 1:
        return within_drop
    # outcomes y[k, q, c] drawn from mode k at quadrature point q; weights after: w_m N(y; f_m, s_m)
    y = f_c[:, None, :] + OUTCOME_Z[None, :, None] * np.sqrt(s)[:, None, :]
    logp = -0.5 * (y[None] - f_c[:, None, None, :]) ** 2 / s[:, None, None, :] - 0.5 * np.log(s)[:, None, None, :]
    logp += np.log(w)[:, None, None, None]  # (M, K, Q, C)
    post = np.exp(logp - logp.max(axis=0))
    post /= post.sum(axis=0)
    mu_after = np.einsum("mkqc,mt->kqct", post, f_t)
    spread = np.einsum("mkqc,mkqct->kqc", post, (f_t[:, None, None, None, :] - mu_after[None]) ** 2) / f_t.shape[1]
    qw = np.exp(-0.5 * OUTCOME_Z**2)
    qw /= qw.sum()
    between_after = np.einsum("k,q,kqc->c", w, qw, spread)
    return within_drop + (between_now - between_after)


def adaptive_design(
    kind: str,
    cand: pd.DataFrame,
    targets: pd.DataFrame,
    initial: pd.DataFrame,
    oracle: Oracle,
    budget: float,
    max_steps: int = 80,
) -> list[str]:
    """V-optimal (``kind="vopt"``: the best mode alone) or MSPE (``"mspe"``: the mixture of modes).

    One run at a time: refit, score every affordable candidate by its expected drop of target error
    per cost**0.4, reveal the best, until nothing affordable is left.
    """
    logN, logD = np.log(initial["N"].to_numpy(float)), np.log(initial["D"].to_numpy(float))
    y = np.log(initial["loss"].to_numpy(float))
    tgt = (np.log(targets["N"].to_numpy(float)), np.log(targets["D"].to_numpy(float)))
    left = cand.reset_index(drop=True)
    spent, chosen = float(initial["C"].sum()), []
    for _ in range(max_steps):
        afford = left[left["C"] <= (budget - spent) * (1 + 1e-9)]
        if afford.empty:
            break
        modes, sigma2 = fit_modes(logN, logD, y, tgt, max_modes=1 if kind == "vopt" else MAX_MODES)
        cnd = (np.log(afford["N"].to_numpy(float)), np.log(afford["D"].to_numpy(float)))
        gain = mspe_scores(modes, sigma2, tgt, cnd)
        score = np.where(np.isfinite(gain), gain, -np.inf) / afford["C"].to_numpy(float) ** COST_POWER
        pick = afford.iloc[int(np.argmax(score))]
        rid = str(pick["run_id"])
        loss = oracle.reveal(rid)
        chosen.append(rid)
        spent += float(pick["C"])
        logN, logD = np.append(logN, math.log(pick["N"])), np.append(logD, math.log(pick["D"]))
        y = np.append(y, math.log(loss))
        left = left[left["run_id"] != rid]
    return chosen
