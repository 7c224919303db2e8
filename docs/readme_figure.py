"""Make docs/chinchilla_band.png, the README's picture: the Chinchilla law fitted to Epoch AI's
digitised Chinchilla runs, extrapolated 10-1000x beyond the largest run, with 50/90% credible bands.

    BAYESCALE_DATA=../shared/data .venv/bin/python docs/readme_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import bayescale as bs  # noqa: E402

runs = bs.datasets.load_chinchilla()
fit = bs.fit("chinchilla", runs, seed=0)
C = np.geomspace(runs["C"].min(), runs["C"].max() * 1000, 60)
N = np.sqrt(C / (6 * 20))  # along D = 20 N
band = fit.predict({"N": N, "D": 20 * N})
q = band.quantile([0.05, 0.25, 0.5, 0.75, 0.95], dim=("chain", "draw")).values

fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
ratio = runs["D"] / runs["N"]
sc = ax.scatter(runs["C"], runs["loss"], c=np.log10(ratio), s=10, cmap="viridis", label="Chinchilla runs (Epoch)")
ax.fill_between(C, q[0], q[4], color="C1", alpha=0.25, label="90% band, D = 20N")
ax.fill_between(C, q[1], q[3], color="C1", alpha=0.45, label="50% band")
ax.plot(C, q[2], color="C1", lw=1.5)
ax.axvline(runs["C"].max(), ls=":", c="grey")
ax.text(runs["C"].max() * 1.3, q[4].max() * 0.98, "extrapolation →", color="grey", va="top")
ax.set(xscale="log", yscale="log", xlabel="training FLOPs C", ylabel="final loss (nats/token)", ylim=(1.8, 5.2))
fig.colorbar(sc, ax=ax, label="log10 tokens per parameter")
ax.legend(loc="upper right", fontsize=8)
ax.set_title("bayescale: Chinchilla law posterior, 240 runs, 4 chains × 1000 draws", fontsize=9)
fig.tight_layout()
out = Path(__file__).with_name("chinchilla_band.png")
fig.savefig(out)
print(out, fit.summary().round(3).to_string(), sep="\n")
