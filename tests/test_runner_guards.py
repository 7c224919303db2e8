"""What keeps a pilot from being trained for nothing, or twice (``bayescale.runner.guards``), checked
without training: a table the row cannot go to, bad counts and Slurm options refused before anything
is planned (one line, exit 2), one trainer per work folder, sweep workers that die with their driver,
the hyperparameter rules' N, what a branch trained later records as ``C_branch``, and the sweep's
progress lines."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bayescale._io import locked
from bayescale.cli import main
from bayescale.design.targets import runs_flops, trunks_of
from bayescale.runner.guards import checked_device, table_problem, training_lock
from bayescale.runner.models import PilotError
from bayescale.runner.sweep import Job, SweepError, SweepReport, _Progress, run_sweep
from bayescale.runner.train import run_pilot
from bayescale.runner.wsd import Branch, LaterBranch, replayed_steps

ROOT = Path(__file__).resolve().parents[1]
PILOT = ["pilot", "--n-params", "2e4", "--tokens", "1e5", "--eval-tokens", "1024"]


def _sweep(tmp_path: Path, table: str) -> Path:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'table = "{table}"\n[[run]]\nn_params = 2e4\ntokens = 6000\n')
    return sweep


# ----------------------------------------------------------------------------- the runs table


def test_a_table_the_rows_cannot_go_to_is_named_before_training(tmp_path):
    assert table_problem(tmp_path / "new.csv") is None  # a new table: the first row starts it
    (tmp_path / "empty.csv").write_text("")
    assert table_problem(tmp_path / "empty.csv") is None
    good = tmp_path / "good.csv"
    good.write_text("run_id,N,D,loss\na,1e6,2e7,3.0\n")
    assert table_problem(good) is None
    assert "does not exist" in table_problem(tmp_path / "nodir" / "runs.csv")
    assert "is a folder" in table_problem(tmp_path)
    read_only = tmp_path / "ro.csv"
    shutil.copy(good, read_only)
    read_only.chmod(0o444)
    assert "read-only" in table_problem(read_only)
    extra = tmp_path / "extra.csv"
    extra.write_text("run_id,N,D,loss\nx,1e6,2e7,3.0,extra\n")
    # read as load_runs reads it: the extra field is named, not shifted into another column
    assert "line 2 has more fields than the header's 4" in table_problem(extra)
    bad = tmp_path / "bad.csv"
    bad.write_text("run_id,N,D,loss\nx,1e6,2e7,abc\n")
    assert "column 'loss' must be numeric" in table_problem(bad)
    notes = tmp_path / "notes.json"
    notes.write_text('[{"N": 1e6}]\n')
    assert "is not a runs table" in table_problem(notes)


def test_pilot_and_sweep_refuse_such_a_table_before_training(tmp_path, capsys):
    read_only = tmp_path / "ro.csv"
    read_only.write_text("run_id,N,D,loss\na,1e6,2e7,3.0\n")
    read_only.chmod(0o444)
    assert main([*PILOT, "--append", str(read_only)]) == 2
    err = capsys.readouterr().err
    assert "it is read-only" in err and "nothing was trained" in err and "step" not in err
    extra = tmp_path / "extra.csv"
    extra.write_text("run_id,N,D,loss\nx,1e6,2e7,3.0,extra\n")
    assert main([*PILOT, "--append", str(extra), "--dry-run"]) == 2
    assert "line 2 has more fields than the header's 4" in capsys.readouterr().err
    # a sweep's table under a missing folder: refused as `pilot --append` refuses it, the folder not created
    sweep = _sweep(tmp_path, "nodir/r.csv")
    for dry in ([], ["--dry-run"]):
        assert main(["pilot", "sweep", str(sweep), *dry]) == 2
        err = capsys.readouterr().err
        assert "sweep table 'nodir/r.csv'" in err or "nodir" in err
        assert "does not exist" in err and "nothing was trained" in err and "Traceback" not in err
    assert not (tmp_path / "nodir").exists()
    assert main(["pilot", "sweep", str(_sweep(tmp_path, "ro.csv"))]) == 2
    assert "it is read-only" in capsys.readouterr().err
    with pytest.raises(PilotError, match="it is read-only"):  # the API too
        run_pilot(2e4, 1e5, append=read_only)
    assert read_only.read_text() == "run_id,N,D,loss\na,1e6,2e7,3.0\n"


# ----------------------------------------------------------------------------- counts and options


def test_bad_counts_exit_2_with_one_line(tmp_path, capsys):
    sweep = _sweep(tmp_path, "runs.csv")
    cases = [
        ([*PILOT, "--threads", "0"], "--threads 0 is not allowed; allowed: a positive integer"),
        ([*PILOT, "--threads", "-1", "--dry-run"], "--threads -1 is not allowed"),
        ([*PILOT, "--save-every", "-1"], "--save-every -1 is not allowed; allowed: seconds >= 0"),
        (["pilot", "sweep", str(sweep), "--workers", "0"], "--workers 0 is not allowed"),
        (["pilot", "sweep", str(sweep), "--threads-per-pilot", "0"], "--threads-per-pilot 0 is not allowed"),
        (["pilot", "sweep", str(sweep), "--max-parallel", "0", "--executor", "slurm"], "--max-parallel 0"),
    ]
    for args, msg in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)
    with pytest.raises(PilotError, match="threads=0 is not allowed"):
        checked_device("cpu", 0)
    with pytest.raises(SweepError, match="threads_per_pilot=0 is not allowed"):
        run_sweep(sweep, threads_per_pilot=0)
    assert not (tmp_path / "runs.csv").exists()


def test_negative_numbers_in_exponent_notation_are_values(capsys):
    # argparse of Python 3.11/3.12 took -3e5 for an option ("expected one argument")
    assert main([*PILOT[:3], "--tokens", "-3e5", "--dry-run"]) == 2
    assert "tokens=-300000.0 must be a finite number > 0" in capsys.readouterr().err
    assert main(["pilot", "--n-params", "-5e4", "--tokens", "1e5", "--dry-run", "-q"]) == 2
    assert "n_params=-50000.0 must be a finite number > 0" in capsys.readouterr().err


def test_slurm_options_submitit_would_refuse_are_refused_before_planning(tmp_path, capsys):
    pytest.importorskip("submitit", reason="the slurm executor is optional (pip install 'bayescale[slurm]')")
    sweep = _sweep(tmp_path, "runs.csv")
    slurm = ["pilot", "sweep", str(sweep), "--executor", "slurm", "--cluster", "local", "--slurm-option"]
    for option, msg in [
        ("nonsense_key=1", "submitit has no parameter 'nonsense_key'; allowed: cpus_per_task"),
        ("slurm_acount=lab", "or one of Slurm's: slurm_account"),
        ("mem_gb=lots", "mem_gb takes a number, not 'lots'"),
        ("timeout_min=1.5", "timeout_min takes an integer, not 1.5"),
    ]:
        assert main([*slurm, option]) == 2, option
        err = capsys.readouterr().err
        assert msg in err and "nothing was trained" in err and "Traceback" not in err, (option, err)
    assert not (tmp_path / "runs_slurm").exists()
    with pytest.raises(SweepError, match="slurm option mem_gb='lots': mem_gb takes a number"):
        run_sweep(sweep, executor="slurm", slurm={"cluster": "local", "mem_gb": "lots"})
    if shutil.which("srun") is None:  # submitit's own answer here is a RuntimeError's traceback
        assert main(["pilot", "sweep", str(sweep), "--executor", "slurm"]) == 2
        assert "this machine has no Slurm (no srun on the PATH)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- one trainer per run

HOLDER = """
import sys, time
from pathlib import Path
from bayescale.runner.guards import training_lock
out = Path(sys.argv[1])
with training_lock(out, "run-a"):
    (out / "holding").write_text("")
    time.sleep(1.5)
    (out / "result.json").write_text("{}")
"""


def test_a_second_trainer_of_a_run_waits_for_the_first(tmp_path, capsys):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "holding").exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        with training_lock(tmp_path, "run-a"):
            # the first trainer finished before this one got the lock: its result is there to use
            assert (tmp_path / "result.json").exists()
    finally:
        holder.wait(30)
    assert "run-a: another process is training it" in capsys.readouterr().err
    with training_lock(tmp_path, "run-a"):  # a lock nobody holds is taken at once, silently
        pass
    assert capsys.readouterr().err == ""


BUILDER = """
import sys
from bayescale.runner.corpus import token_streams
print("imported", flush=True)
token_streams(sys.argv[1], vocab_size=300)
"""


def test_a_second_builder_of_a_corpus_waits_for_the_first_and_reads_its_tokens(tmp_path):
    pytest.importorskip("tokenizers", reason="the pilot runner needs the runner extra")
    from bayescale.runner.corpus import load_corpus

    text = tmp_path / "text"
    text.mkdir()
    for i in range(64):
        (text / f"doc{i}.txt").write_text(f"document {i}: " + " ".join(f"word{j * i % 97}" for j in range(200)))
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BAYESCALE_CACHE": str(cache)}
    tokenizer = cache / "tokenizers" / f"{load_corpus(str(text)).short_hash}-bpe300.json"
    alone = {**env, "BAYESCALE_CACHE": str(tmp_path / "alone")}  # a first build in a cache folder not made yet
    assert subprocess.run([sys.executable, "-c", BUILDER, str(text)], env=alone, timeout=120).returncode == 0
    held = contextlib.ExitStack()
    held.enter_context(locked(tokenizer.with_suffix("")))  # another process is building this corpus's tokens
    builder = subprocess.Popen([sys.executable, "-c", BUILDER, str(text)], env=env, stdout=subprocess.PIPE, text=True)
    with builder:
        try:
            assert builder.stdout.readline().strip() == "imported"
            time.sleep(2)  # unlocked, this tiny corpus is trained and encoded well within this
            assert builder.poll() is None and not tokenizer.exists()
        except BaseException:
            builder.kill()
            raise
        finally:
            held.close()
        assert builder.wait(60) == 0
    assert tokenizer.exists() and len(list((cache / "tokens").glob("*.npy"))) == 2
    with locked(tokenizer.with_suffix("")):  # a filled cache is read without the lock (it may be read-only)
        again = subprocess.run([sys.executable, "-c", BUILDER, str(text)], env=env, capture_output=True, timeout=120)
    assert again.returncode == 0 and b"waiting" not in again.stderr


DRIVER = """
import multiprocessing as mp, os, sys, threading, time
from bayescale.runner.guards import die_with_parent, watch_parent

def worker(driver, how, out):
    if how == "watchdog":  # the portable fallback alone (no prctl)
        threading.Thread(target=watch_parent, args=(driver, 0.2), daemon=True).start()
    else:
        die_with_parent(driver)
    with open(out, "w") as fh:
        fh.write(str(os.getpid()))
    while True:  # a pilot that would train for ever
        time.sleep(0.1)

if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    for how in ("die_with_parent", "watchdog"):
        ctx.Process(target=worker, args=(os.getpid(), how, os.path.join(sys.argv[1], how))).start()
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie no init reaps yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_workers_die_with_their_driver(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = tmp_path / "driver.py"  # a file: spawned workers import their function from it
    script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env)
    files = [tmp_path / "die_with_parent", tmp_path / "watchdog"]
    try:
        deadline = time.monotonic() + 60
        while not all(f.exists() and f.read_text() for f in files):
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        workers = [int(f.read_text()) for f in files]
        assert all(_alive(pid) for pid in workers)
    finally:
        driver.send_signal(signal.SIGKILL)  # kill -9: the driver has no chance to stop its workers
        driver.wait(30)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their driver"


# ----------------------------------------------------------------------------- what a pilot is


def test_hyperparameter_rules_take_the_built_models_n(monkeypatch):
    import bayescale.runner.plan as plan_module

    streams = SimpleNamespace(
        vocab_size=2048, heldout=np.zeros(100_000, np.uint16), corpus_hash="c" * 64, tokenizer_hash="t" * 12
    )
    monkeypatch.setattr(plan_module, "token_streams", lambda corpus, vocab_size: streams)
    small, large = (plan_module.plan_pilot(n, 3e5) for n in (2e4, 3e4))
    # both requests build the same model (N = 27,792): the same learning rate and warmup, from that N
    assert small.shape == large.shape and small.hyper == large.hyper
    assert small.hyper.warmup_steps == round(27792 / (8 * 128)) and small.run_id != large.run_id


def test_a_later_branch_counts_the_trunk_steps_it_trained_again():
    trunk = Path("pilots/trunk-x")

    def later(steps: int, cooldown: int, checkpoint: int) -> LaterBranch:
        return LaterBranch(None, Branch(steps / 200, steps, cooldown), trunk, trunk / f"checkpoint-{checkpoint}")

    # from the checkpoint at step 80 to the branch's start at 120: 40 steps trained again
    assert replayed_steps(later(150, 30, 80), extended=False) == 40
    assert replayed_steps(later(100, 20, 80), extended=False) == 0  # off a kept checkpoint
    # past the trunk's end (160): replayed unless kept as the trunk's new checkpoint (then the trunk's)
    assert replayed_steps(later(250, 50, 160), extended=False) == 40
    assert replayed_steps(later(250, 50, 160), extended=True) == 0
    # rows as the runner writes them (512 tokens a step): trunk branches at 100 and 200 steps, then later
    # branches at 150 steps (off step 80) and at 250 (past the end, its checkpoint not kept)
    n, tok = 27792.0, 512
    steps, cool, replay = [100, 200, 150, 250], [20, 40, 30, 50], [0, 0, 40, 40]
    rows = pd.DataFrame(
        {
            "run_id": list("abcd"),
            "N": n,
            "D": [s * tok for s in steps],
            "loss": 5.0,
            "trunk_id": "t",
            "C_branch": [6 * n * (c + r) * tok for c, r in zip(cool, replay, strict=True)],
        }
    )
    # what each later branch cost the loop: its cooldown and the 40 trunk steps it trained again
    assert runs_flops(rows.iloc[[2]], rows.iloc[:2])[0] == pytest.approx(6 * n * 70 * tok)
    assert runs_flops(rows.iloc[[3]], rows.iloc[:3])[0] == pytest.approx(6 * n * 90 * tok)
    # the trunk a future branch can start from is still the kept one, to step 160, not the extended 200
    assert trunks_of(rows)["trained"].iloc[0] == 160 * tok


# ----------------------------------------------------------------------------- the sweep's progress


def test_a_wsd_jobs_rows_are_counted_as_one_job(tmp_path):
    lines = []
    jobs = [Job(2e4, 1e5, {"schedule": "wsd"}), Job(3e4, 1e5)]
    progress = _Progress(jobs, tmp_path / "runs.csv", SweepReport(), lines.append)
    row = {"loss": 5.0, "wall_s": 1.0}
    branches = [SimpleNamespace(row={**row, "run_id": f"b{i}"}) for i in range(3)]
    progress.finished(jobs[0], branches, saved=True)
    progress.finished(jobs[1], [SimpleNamespace(row={**row, "run_id": "p"})], saved=True)
    assert [line.split("]")[0] for line in lines] == [
        "[1/2, branch 1 of 3",
        "[1/2, branch 2 of 3",
        "[1/2, branch 3 of 3",
        "[2/2",
    ]
    assert json.dumps(progress.report.finished) == '["b0", "b1", "b2", "p"]'
