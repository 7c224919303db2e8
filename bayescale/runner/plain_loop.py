"""A plain torch training loop: the yardstick of the runner's overhead (``benchmarks/bench_runner.py``).

It trains a pilot's model exactly as the runner plans it (same model, data, AdamW, schedule and
clipping) without the ``transformers`` Trainer, so that the Trainer's cost can be measured against it.
"""

from __future__ import annotations

import time

from .models import require_torch
from .plan import PilotPlan
from .train import build_pilot


def plain_torch_loop(
    plan: PilotPlan,
    steps: int | None = None,
    threads: int | None = None,
    *,
    device: str = "cpu",
    compile: bool | str = False,
    warmup_steps: int = 0,
) -> dict[str, float]:
    """Train ``plan``'s model with a plain torch loop (same model, data, AdamW, schedule and clipping,
    no Trainer) for ``steps`` steps; returns ``{"tokens_per_s", "seconds", "final_loss"}``, timed over the
    steps after the first ``warmup_steps``.

    On ``device="cuda"`` it trains as the runner does there: bf16 autocast and fused AdamW, and with
    ``compile`` a ``torch.compile``-d model (a string: its mode). The yardstick for the runner's overhead in
    ``benchmarks/bench_runner.py``.
    """
    torch = require_torch()
    if threads is not None:
        torch.set_num_threads(int(threads))
    from transformers import get_scheduler

    h = plan.hyper
    steps = h.steps if steps is None else int(steps)
    cuda = device == "cuda"
    model, data = build_pilot(plan, device)
    model = model.cuda() if cuda else model
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": h.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=h.lr,
        betas=(h.adam_beta1, h.adam_beta2),
        **({"fused": True} if cuda else {}),
    )
    sched = get_scheduler(
        h.schedule,
        opt,
        num_warmup_steps=h.warmup_steps,
        num_training_steps=h.steps,
        scheduler_specific_kwargs={"min_lr_rate": h.min_lr_ratio},
    )
    forward = torch.compile(model, mode=compile if isinstance(compile, str) else None) if compile else model
    gen = torch.Generator().manual_seed(plan.seed)
    loader = torch.utils.data.DataLoader(
        data.train, batch_size=h.batch_size, shuffle=True, generator=gen, drop_last=True, pin_memory=cuda
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    it = iter(loader)
    t0 = time.perf_counter()
    loss = None
    for step in range(steps):
        if step == warmup_steps:
            if cuda:  # the GPU runs behind the loop: wait for the warm-up steps before the clock starts
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        ids, labels = (batch[k].to(device, non_blocking=True) for k in ("input_ids", "labels"))
        with autocast:
            loss = forward(input_ids=ids, labels=labels)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), h.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {
        "tokens_per_s": (steps - warmup_steps) * h.batch_size * plan.shape.seq_len / seconds,
        "seconds": seconds,
        "final_loss": float(loss.detach()),
    }


__all__ = ["plain_torch_loop"]
