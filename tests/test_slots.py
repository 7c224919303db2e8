"""Which law fills each draw of a law average, and the weights' fading beyond their tested reach."""

from __future__ import annotations

import numpy as np
import pytest

from bayescale import _slots


def test_counts_follow_the_weights_and_fill_every_slot() -> None:
    c = _slots.counts([0.5, 0.3, 0.2], 1001)
    assert c.sum() == 1001 and np.all(np.abs(c - np.array([0.5, 0.3, 0.2]) * 1001) < 1)
    shape = (4, 250)
    s = _slots.slots(shape, [0.7, 0.2, 0.1], seed=3)
    assert s.shape == shape and np.bincount(s.reshape(-1)).tolist() == [700, 200, 100]
    assert not np.array_equal(s, _slots.slots(shape, [0.7, 0.2, 0.1], seed=4))  # positions by seed


def test_weights_fade_towards_equal_beyond_the_reach_they_were_tested_at() -> None:
    w = [0.9, 0.1]
    assert _slots.faded_weights(w, 0.5, np.array([0.0, 0.3, 0.5])) is None  # all within the reach
    assert _slots.faded_weights(w, None, np.array([3.0])) is None  # weights never scored
    assert _slots.faded_weights([1.0], 0.5, np.array([3.0])) is None  # one law
    faded = _slots.faded_weights(w, 0.5, np.array([0.2, 1.0, 2.0, 50.0]))
    np.testing.assert_allclose(faded.sum(axis=1), 1.0)
    np.testing.assert_allclose(faded[0], w)  # within the reach: the stacking weights
    np.testing.assert_allclose(faded[1], [0.5 * 0.9 + 0.25, 0.5 * 0.1 + 0.25])  # twice the reach: half way
    assert np.all(np.diff(faded[:, 0]) < 0) and faded[-1, 0] == pytest.approx(0.5, abs=0.01)


def test_a_points_slots_keep_the_fits_slots_and_move_as_few_as_the_counts_allow() -> None:
    base = _slots.slots((4, 250), [0.7, 0.2, 0.1], seed=3)
    weights = np.array([[0.7, 0.2, 0.1], [0.6, 0.25, 0.15], [0.4, 0.3, 0.3], [1 / 3, 1 / 3, 1 / 3]])
    per_point = _slots.point_slots(base, weights, seed=3)
    np.testing.assert_array_equal(per_point[0], base.reshape(-1))
    for w, s in zip(weights, per_point):
        assert np.bincount(s, minlength=3).tolist() == _slots.counts(w, 1000).tolist()
        moved = np.abs(_slots.counts(w, 1000) - _slots.counts(weights[0], 1000)).sum() // 2
        assert np.sum(s != base.reshape(-1)) == moved  # the least that the counts allow


def test_each_point_is_mixed_by_its_own_slots_and_a_shared_axis_serves_every_point() -> None:
    base = _slots.slots((2, 50), [0.8, 0.2], seed=0)
    per_point = _slots.point_slots(base, np.array([[0.8, 0.2], [0.5, 0.5]]), seed=0)
    law_a, law_b = np.zeros((2, 50, 2)), np.ones((2, 50, 2))  # a value that names its law, at 2 points
    out = _slots.mixed_per_point([law_a, law_b], per_point, (2, 50))
    assert out.shape == (100, 2) and out[:, 0].sum() == 20 and out[:, 1].sum() == 50
    noise = _slots.mixed_per_point([law_a[..., :1], law_b[..., :1]], per_point, (2, 50))
    np.testing.assert_array_equal(noise, out)  # one entry per law (a noise parameter) follows each point's slots
