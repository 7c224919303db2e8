"""The peak dense bf16 matrix rate of the GPU a pilot trains on, for its model FLOPs utilisation (MFU).

MFU is the pilot's analytic training FLOPs (:func:`bayescale.runner.shapes.training_flops`) per second
of training over the device's peak. The peak is looked up by the GPU's model name, from the vendors'
datasheets (dense, without structured sparsity, which the datasheets often quote at twice the rate).
A GPU not in the table gets no MFU (NaN) rather than a guess; ``BAYESCALE_PEAK_TFLOPS`` states one.
"""

from __future__ import annotations

import math
import os
import re

#: Dense bf16 tensor-core peak in TFLOP/s by a substring of the name torch reports
#: (``torch.cuda.get_device_name``), matched as whole words ("A10" is not the A10G, "L4" not the L40)
#: in this order: the first found wins, so the specific names (H100 NVL, H100 PCIe) come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("GB200", 2500.0),
    ("B200", 2250.0),
    ("B100", 1750.0),
    ("H200 NVL", 835.0),
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H800 PCIe", 756.0),
    ("H800", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("MI300X", 1307.0),
    ("MI250X", 383.0),
)

PEAK_ENV = "BAYESCALE_PEAK_TFLOPS"


def peak_bf16_flops(device_name: str) -> float:
    """Peak dense bf16 FLOP/s of the GPU named ``device_name``, or NaN when it is not in
    :data:`PEAK_BF16_TFLOPS` (and ``BAYESCALE_PEAK_TFLOPS`` does not state it)."""
    stated = os.environ.get(PEAK_ENV)
    if stated:
        try:
            value = float(stated)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{PEAK_ENV}={stated!r} must be a positive number of TFLOP/s")
        return value * 1e12
    for key, tflops in PEAK_BF16_TFLOPS:
        if re.search(rf"\b{re.escape(key)}\b", device_name, flags=re.IGNORECASE):
            return tflops * 1e12
    return float("nan")


def mfu(flops: float, seconds: float, device_name: str) -> float:
    """Model FLOPs utilisation: ``flops`` done in ``seconds`` over the peak of ``device_name`` (NaN
    where the peak is unknown or the time is not positive)."""
    peak = peak_bf16_flops(device_name)
    if not (seconds > 0 and math.isfinite(peak)):
        return float("nan")
    return flops / seconds / peak


__all__ = ["PEAK_BF16_TFLOPS", "PEAK_ENV", "mfu", "peak_bf16_flops"]
