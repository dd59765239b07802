"""End-of-sweep outputs: the Pareto table (printed and saved) and a plot per cell (PNG + HTML index)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchestrator import results


def write_report(run_dir: str | Path) -> pd.DataFrame:
    run_dir = Path(run_dir)
    out = run_dir / "pareto"
    out.mkdir(parents=True, exist_ok=True)
    objectives = [n for n, _ in results._objectives(run_dir)]
    all_trials, front = results.trials(run_dir), results.pareto(run_dir)
    all_trials.to_csv(out / "trials.csv", index=False)
    front.to_csv(out / "pareto.csv", index=False)
    images = []
    if len(objectives) >= 2:
        for cell, cell_trials in all_trials[all_trials["status"] == "done"].groupby("cell"):
            images.append(_plot(out, cell, cell_trials, front[front["cell"] == cell], objectives[:2]))
    _write_html(out, front, objectives, images)
    return front


def _plot(out: Path, cell: str, cell_trials: pd.DataFrame, cell_front: pd.DataFrame, axes: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = axes
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(cell_trials[x], cell_trials[y], c="lightgray", edgecolors="gray", label="trials")
    line = cell_front.sort_values(x)
    ax.plot(line[x], line[y], "o-", color="tab:red", label="Pareto front")
    for _, row in line.iterrows():
        ax.annotate(f"lr={row['lr']:.1e}\nmix={row['mix']:.2f}", (row[x], row[y]), fontsize=6,
                    textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(cell)
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = cell.replace(":", "-").replace("/", "-") + ".png"
    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    return name


def _write_html(out: Path, front: pd.DataFrame, objectives: list[str], images: list[str]) -> None:
    columns = [c for c in ["cell", "lr", "mix", *objectives, "key"] if c in front.columns]
    body = "".join(f'<img src="{name}" alt="{name}">' for name in images)
    table = front[columns].to_html(index=False, float_format=lambda v: f"{v:.4g}")
    (out / "index.html").write_text(f"<html><body><h1>Pareto fronts</h1>{body}{table}</body></html>")


def format_front(front: pd.DataFrame, objectives: list[str]) -> str:
    if front.empty:
        return "(no finished trials yet)"
    columns = [c for c in ["cell", "lr", "mix", *objectives] if c in front.columns]
    return front[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}")
