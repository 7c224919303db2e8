"""Make the README's pictures, both the report's "loss against compute" plot (`bayescale.plots.plot_law`)
with 50/90% bands extrapolated 1000x beyond the largest run:

- docs/pilot_band.png: the Chinchilla spec fitted to the committed pilot sweep, data/pilot_runs.csv;
- docs/chinchilla_band.png: the Chinchilla law fitted to Epoch AI's 240 digitised Chinchilla runs
  (needs BAYESCALE_DATA or the network).

    BAYESCALE_DATA=../shared/data .venv/bin/python docs/readme_figure.py [pilot|chinchilla]
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import bayescale as bs  # noqa: E402
from bayescale import plots  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
which = sys.argv[1:] or ["pilot", "chinchilla"]
for name in which:
    if name == "pilot":
        runs, out = bs.load_runs(ROOT / "data" / "pilot_runs.csv"), "pilot_band.png"
    else:
        runs, out = bs.datasets.load_chinchilla(), "chinchilla_band.png"
    fit = bs.fit("chinchilla", runs, seed=0)
    fig = plots.plot_law(fit, x="C")
    path = Path(__file__).with_name(out)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(path)
    print(fit.summary().round(4).to_string())
    print(fit.diagnostics())
