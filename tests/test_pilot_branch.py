"""A cooldown branch trained later off a WSD trunk (`bayescale pilot --branch-of TRUNK_ID --tokens D`):
it equals the branch trained together with the trunk at the same D, its row is recorded like the
trunk's other branches (its ``C_branch`` also counts the trunk steps it trained again from a kept
checkpoint), and bad requests exit 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from bayescale import load_runs
from bayescale.cli import main
from bayescale.design.targets import branch_flops, runs_flops, trunks_of

torch = pytest.importorskip("torch", reason="the pilot runner needs the runner extra (torch, transformers)")
pytest.importorskip("transformers")

#: A trunk of 200 steps of 4 x 128 tokens (102400 tokens): branches at 0.5 and 1.0 leave it at steps
#: 80 and 160 and cool down 20 and 40 steps, so every branch's cooldown share is exactly 0.2.
TOKENS = 102400
PILOT = ["pilot", "--n-params", "2e4", "--tokens", str(TOKENS), "--schedule", "wsd", "--eval-tokens", "1024"]
QUIET = ["--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def cache(private_cache):
    """This module's own bayescale cache (tokenizer and token arrays copied from the run's)."""
    return private_cache


def _trunk_id(table) -> str:
    return str(load_runs(table)["trunk_id"].iloc[0])


@pytest.fixture(scope="module")
def trunks(cache, tmp_path_factory):
    """Trunk A (branches at 0.5 and 1.0, checkpoints kept) and trunk B, the same trunk with its one
    branch at 0.75 trained together with it (no checkpoints kept): their tables and work folders."""
    tmp = tmp_path_factory.mktemp("trunks")
    a, b = tmp / "a.csv", tmp / "b.csv"
    common = [*PILOT, *QUIET]
    assert main([*common, "--cooldowns", "0.5,1.0", "--keep-checkpoints", "--append", str(a)]) == 0
    assert main([*common, "--cooldowns", "0.75", "--append", str(b), "--work-dir", str(tmp / "b")]) == 0
    return {"a": a, "b": b, "b_dir": tmp / "b", "tmp": tmp}


@pytest.mark.slow
def test_a_later_branch_equals_the_branch_trained_with_the_trunk(trunks, cache, capsys):
    a = trunks["a"]
    trunk_id = _trunk_id(a)
    before = load_runs(a)
    folder = cache / "pilots" / trunk_id / "trunk"
    assert sorted(p.name for p in folder.glob("checkpoint-*")) == ["checkpoint-160", "checkpoint-80"]
    later = ["pilot", "--branch-of", trunk_id, "--tokens", str(0.75 * TOKENS)]
    assert main([*later, "--dry-run"]) == 0
    assert "from its checkpoint at step 80, constant learning rate to step 120, then 30 cooldown" in (
        capsys.readouterr().out
    )
    assert main([*later, "--dry-run", "--format", "json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["from_step"] == 80 and planned["branch"]["trunk_id"] == trunk_id
    assert planned["branch"]["branch_step"] == 120 and planned["branch"]["cooldown_steps"] == 30
    assert main([*later, *QUIET, "--append", str(a)]) == 0
    runs = load_runs(a)
    row, ref = runs.iloc[-1], load_runs(trunks["b"]).iloc[0]
    assert len(runs) == 3 and row["trunk_id"] == trunk_id and row["run_id"] != ref["run_id"]
    # the same training as the branch at 0.75 trained with the trunk: same tokens, same loss
    for col in ("D", "C", "steps", "branch_step", "cooldown_steps", "lr", "warmup_steps", "schedule"):
        assert row[col] == ref[col], col
    assert row["D"] == 150 * 512 and row["branch_step"] == 120 and row["cooldown_steps"] == 30
    assert abs(row["loss"] - ref["loss"]) <= 1e-6, (row["loss"], ref["loss"])
    assert list(runs.columns) == list(before.columns)  # recorded with the columns of the trunk's branches
    # what it cost beyond the trunk that existed: its cooldown (the C_branch of the branch trained with the
    # trunk) and the 40 trunk steps from the kept checkpoint at 80 to its start at 120, trained again
    assert row["C_branch"] == pytest.approx(ref["C_branch"] + 6 * row["N"] * 40 * 512, rel=1e-12)
    assert runs_flops(runs.iloc[[-1]], before)[0] == pytest.approx(row["C_branch"], rel=1e-12)
    # the planner priced it at its cooldown alone (it counts on a checkpoint at every trunk step)
    cand = pd.DataFrame({"N": [row["N"]], "D": [row["D"]]})
    assert branch_flops(cand, before)[0] == pytest.approx(ref["C_branch"], rel=1e-12)
    assert trunks_of(runs)["trained"].iloc[0] == 160 * 512  # the trunk was not extended
    assert not list((cache / "pilots" / trunk_id / "cooldown-0.75").glob("checkpoint-*"))
    # a rerun trains nothing and adds no row
    capsys.readouterr()
    assert main([*later, *QUIET, "--append", str(a), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == row["run_id"] and len(load_runs(a)) == 3
    # so is a branch at a point the trunk was trained with: its row is already there
    assert main(["pilot", "--branch-of", trunk_id, "--tokens", str(TOKENS), *QUIET, "--append", str(a)]) == 0
    assert len(load_runs(a)) == 3


@pytest.mark.slow
def test_a_later_branch_past_the_trunk_extends_it_and_keeps_its_checkpoint(trunks, cache):
    a = trunks["a"]
    trunk_id = _trunk_id(a)
    # past the trunk's end, its checkpoint not kept: the trunk from 160 to 180 is trained and dropped
    # again, so the row counts it, and the trunk a later branch can start from still ends at 160
    past = ["pilot", "--branch-of", trunk_id, "--tokens", str(1.125 * TOKENS), *QUIET, "--append", str(a)]
    assert main(past) == 0
    runs = load_runs(a)
    row = runs.iloc[-1]
    assert row["branch_step"] == 180 and row["cooldown_steps"] == 45
    assert row["C_branch"] == 6 * row["N"] * (45 + 20) * 512 and trunks_of(runs)["trained"].iloc[0] == 160 * 512
    assert not (cache / "pilots" / trunk_id / "trunk" / "checkpoint-180").exists()
    before = runs
    later = ["pilot", "--branch-of", trunk_id, "--tokens", str(1.25 * TOKENS), *QUIET, "--keep-checkpoints"]
    assert main([*later, "--append", str(a)]) == 0
    runs = load_runs(a)
    row = runs.iloc[-1]
    # 250 steps: the trunk from step 160 to 200 at constant rate, then 50 cooldown steps
    assert row["D"] == 250 * 512 and row["branch_step"] == 200 and row["cooldown_steps"] == 50
    assert row["C"] == pytest.approx(6 * row["N"] * row["D"]) and row["C_branch"] == 6 * row["N"] * 50 * 512
    assert np.isfinite(row["loss"]) and row["loss"] < before["loss"].max()
    # what it cost the loop: its cooldown and the 40 steps of trunk it added, kept now as the trunk's: they
    # are the trunk's growth, not the row's C_branch, and a later branch can start from its end
    assert runs_flops(runs.iloc[[-1]], before)[0] == pytest.approx(6 * row["N"] * (50 + 40) * 512)
    assert trunks_of(runs)["trained"].iloc[0] == 200 * 512
    folder = cache / "pilots" / trunk_id / "trunk"
    assert (folder / "checkpoint-200" / "trainer_state.json").exists()  # the extended trunk's, kept


@pytest.mark.slow
def test_bad_branch_requests_exit_2(trunks, cache, capsys):
    a = trunks["a"]
    trunk_id = _trunk_id(a)
    ref_id = _trunk_id(trunks["b"])
    cases = [
        (["--branch-of", "llama-nope", "--tokens", "5e4"], "unknown trunk id 'llama-nope'"),
        (["--branch-of", ref_id, "--tokens", "5e4"], "pass the --work-dir it was trained with"),
        (["--branch-of", ref_id, "--tokens", "5e4", "--work-dir", str(trunks["b_dir"])], "--keep-checkpoints"),
        (["--branch-of", trunk_id, "--tokens", str(0.35 * TOKENS)], "before its first kept checkpoint (step 80)"),
        (["--branch-of", trunk_id, "--tokens", str(0.35 * TOKENS)], "allowed: tokens >= 51200"),
        (["--branch-of", trunk_id, "--tokens", str(0.25 * TOKENS)], "before the 50 warmup steps end"),
        (["--branch-of", trunk_id, "--tokens", "6e4", "--arch", "gpt2"], "model config mismatch: --arch 'gpt2'"),
        (["--branch-of", trunk_id, "--tokens", "6e4", "--n-params", "3e4"], "trained with n_params=20000.0"),
        (["--branch-of", trunk_id, "--tokens", "6e4", "--cooldowns", "0.5"], "--cooldowns lists a new trunk's"),
        (["--branch-of", trunk_id, "--tokens", "6e4", "--schedule", "cosine"], "allowed: wsd"),
        (["--tokens", "6e4"], "--n-params is required (or --branch-of TRUNK_ID"),
    ]
    for args, msg in cases:
        assert main(["pilot", *args]) == 2, args
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (args, err)
    # the trunk's own settings, given again, are allowed
    assert main(["pilot", "--branch-of", trunk_id, "--tokens", "6e4", "--n-params", "2e4", "--dry-run"]) == 0
    # a trunk whose request now plans another trunk (here: its recorded vocabulary edited)
    copy = trunks["tmp"] / "edited"
    shutil.copytree(cache / "pilots" / trunk_id / "trunk", copy / "trunk", ignore=shutil.ignore_patterns("check*"))
    done = json.loads((copy / "trunk" / "done.json").read_text())
    (copy / "trunk" / "done.json").write_text(json.dumps({**done, "request": {**done["request"], "seq_len": 64}}))
    assert main(["pilot", "--branch-of", trunk_id, "--tokens", "6e4", "--work-dir", str(copy)]) == 2
    assert "model config mismatch: trunk" in capsys.readouterr().err
    del done["request"]  # a trunk trained before its request was recorded
    (copy / "trunk" / "done.json").write_text(json.dumps(done))
    assert main(["pilot", "--branch-of", trunk_id, "--tokens", "6e4", "--work-dir", str(copy)]) == 2
    assert "trained before bayescale recorded a trunk's request" in capsys.readouterr().err


@pytest.mark.slow
def test_a_checkpoint_of_another_model_is_refused(trunks, cache):
    from bayescale.runner.models import PilotError, build_model
    from bayescale.runner.shapes import shape_for
    from bayescale.runner.wsd import _check_checkpoint_model, kept_checkpoints

    trunk_id = _trunk_id(trunks["a"])
    checkpoint = kept_checkpoints(cache / "pilots" / trunk_id / "trunk")[80]
    wider = build_model(shape_for(1e5, "llama", vocab_size=2048, seq_len=128))
    with pytest.raises(PilotError, match="model config mismatch: .* holds .* of shape"):
        _check_checkpoint_model(checkpoint, wider, trunk_id)
    lstm = build_model(shape_for(2e4, "lstm", vocab_size=2048, seq_len=128))
    with pytest.raises(PilotError, match="holds none of the weights"):
        _check_checkpoint_model(checkpoint, lstm, trunk_id)
