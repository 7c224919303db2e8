"""Make docs/chinchilla_band.png, the README's picture: the report's "loss against compute" plot
(`bayescale.plots.plot_law`) for the Chinchilla law fitted to Epoch AI's 240 digitised Chinchilla
runs, with 50/90% bands extrapolated 1000x beyond the largest run.

    BAYESCALE_DATA=../shared/data .venv/bin/python docs/readme_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import bayescale as bs  # noqa: E402
from bayescale import plots  # noqa: E402

fit = bs.fit("chinchilla", bs.datasets.load_chinchilla(), seed=0)
fig = plots.plot_law(fit, x="C")
out = Path(__file__).with_name("chinchilla_band.png")
fig.savefig(out, dpi=110, bbox_inches="tight")
print(out)
print(fit.summary().round(3).to_string())
