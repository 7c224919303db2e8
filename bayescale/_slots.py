"""Which law fills each draw of a law average, and how its weights fade beyond the reach they were tested at.

A law average (:class:`bayescale.averaging.AveragedFit`) gives each (chain, draw) slot to one law, as many
slots to a law as its weight says (:func:`slots`). Those weights come from leave-future-out splits whose
held-out runs lay at most ``reach`` decades (in N and D) beyond the runs each split was fitted to. At a point
farther out than that, which law holds was never tested, so the weights' evidence counts for less: at
distance ``d`` from the runs the stacking weights count ``reach / d`` and equal weights the rest
(:func:`faded_weights`; halfway at twice the reach). The laws' disagreement beyond the tested reach then
widens the band instead of being settled by a test run nearer in. This is a stated assumption, not a fit:
a law that predicted best ``reach`` decades out is taken to be that much less likely to be the best one
``d`` decades out.

At such a point the slots are drawn again from the faded weights, coupled to the fit's own slots
(:func:`point_slots`): each slot keeps its rank, so a slot changes law only where the counts move, and a
point within the reach has exactly the fit's slots.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def counts(weights: Sequence[float], n: int) -> np.ndarray:
    """Slots per law out of ``n``: proportional to ``weights``, rounded by largest remainders."""
    w = np.asarray(weights, dtype=float) / np.sum(weights)
    out = np.floor(w * n).astype(int)
    out[np.argsort(-(w * n - out))[: n - out.sum()]] += 1
    return out


def slots(shape: tuple[int, int], weights: Sequence[float], seed: int) -> np.ndarray:
    """Law index per (chain, draw): :func:`counts` of each law, positions shuffled by ``seed``."""
    per_law = np.repeat(np.arange(len(weights)), counts(weights, shape[0] * shape[1]))
    return np.random.default_rng([seed, 7919]).permutation(per_law).reshape(shape)


def faded_weights(weights: Sequence[float], reach: float | None, distance: np.ndarray) -> np.ndarray | None:
    """Weights per point (point, law): the stacking ``weights`` where a point lies within ``reach`` of the
    runs, faded towards equal weights beyond it (``reach / distance`` of the stacking weights). ``None``
    when no point lies beyond the reach, or there is no reach (weights not scored) or one law."""
    w = np.asarray(weights, dtype=float)
    d = np.asarray(distance, dtype=float)
    if reach is None or w.size < 2 or not np.any(d > reach):
        return None
    keep = np.minimum(1.0, reach / np.maximum(d, reach))[:, None]
    return keep * w[None, :] + (1.0 - keep) / w.size


def point_slots(base: np.ndarray, weights: np.ndarray, seed: int) -> np.ndarray:
    """Law index per (point, slot) for ``weights`` (point, law), coupled to the ``base`` slots: at each point
    as few slots leave their base law as the counts allow.

    A law whose count falls frees its slots in a fixed random order (by ``seed``), and the laws whose count
    grows take the freed slots in law order, so a point whose weights equal the base weights has the base
    slots, and points farther out (weights fading with distance) change more of the same slots."""
    flat = base.reshape(-1)
    k = weights.shape[1]
    order = np.lexsort((np.random.default_rng([seed, 104729]).permutation(flat.size), flat))
    have = np.bincount(flat, minlength=k)
    own = np.split(order, np.cumsum(have)[:-1])  # each law's slots, in their fixed order
    out = np.empty((len(weights), flat.size), dtype=flat.dtype)
    for j, w in enumerate(weights):
        want = counts(w, flat.size)
        freed = np.concatenate([own[i][want[i] :] for i in range(k)])
        gain = np.repeat(np.arange(k), np.maximum(want - have, 0))
        out[j] = flat
        out[j, freed] = gain
    return out


def draw_index(flat_slots: np.ndarray, shapes: Sequence[tuple[int, int]], lead_shape: tuple[int, int]) -> np.ndarray:
    """For each slot, the flattened draw of its law that fills it: the draw in the same place for a law whose
    draws are shaped like the leading law's, else its draws spread evenly over its slots (a minor law drawn
    with fewer draws, or NUTS chains that came back mixed by weight, fewer per chain)."""
    index = np.arange(flat_slots.size)
    for k, shape in enumerate(shapes):
        where = flat_slots == k
        if shape != lead_shape and where.any():
            index[where] = np.arange(where.sum()) * (shape[0] * shape[1]) // where.sum()
    return index


def mixed(arrays: Sequence[np.ndarray], flat_slots: np.ndarray, lead_shape: tuple[int, int]) -> np.ndarray:
    """One array of flattened slots (slot, ...): each slot's value taken from its law's draws (chain, draw, ...)."""
    index = draw_index(flat_slots, [a.shape[:2] for a in arrays], lead_shape)
    out = np.empty((flat_slots.size,) + arrays[0].shape[2:])
    for k, values in enumerate(arrays):
        where = flat_slots == k
        out[where] = values.reshape((-1,) + values.shape[2:])[index[where]]
    return out


def mixed_per_point(
    arrays: Sequence[np.ndarray], per_point: np.ndarray, lead_shape: tuple[int, int], axis: int = 2
) -> np.ndarray:
    """:func:`mixed` with each point (``axis`` of every array) mixed by its own slots (``per_point``: point, slot);
    a law's array with one entry on that axis (a noise parameter) serves every point."""
    columns = []
    for j, flat_slots in enumerate(per_point):
        at_j = [np.take(a, [j if a.shape[axis] > 1 else 0], axis=axis) for a in arrays]
        columns.append(mixed(at_j, flat_slots, lead_shape))
    return np.concatenate(columns, axis=axis - 1)
