"""The sweep's report: `pareto/pareto.csv`, `pareto/trials.csv`, a PNG of each cell's front, and
`pareto/index.html`, one self-contained page (images inlined as base64 PNG, no script or style
fetched from anywhere) that opens from a laptop after `ray rsync-down`.

Per cell the page shows the trials and the Pareto front with error bars (one standard error where
the objective has one), the hypervolume of the front against trial number, and how much lr and mix
matter to each objective (Optuna's PED-ANOVA evaluator on the cell's study), then the paper's table
(orchestrator.results.paper_table: per cell and split, the base model and each front trial in the
paper's metrics, value ± standard error), then one sortable table of every trial. The sweep writes it at the end; `python -m orchestrator.results RUN_DIR --report`
rewrites it mid-sweep.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator import frames
from orchestrator.cells import key_number
from orchestrator.spec_limits import storage_url
from orchestrator.store import RunStore

MIN_TRIALS_FOR_IMPORTANCE = 5   # PED-ANOVA on fewer finished trials says more about the draw than the axis
REFERENCE_MARGIN = 0.1          # hypervolume reference: each objective's worst value + 10% of its range


def write_report(run_dir: str | Path, state: str | None = None) -> pd.DataFrame:
    """state: what the page says of the sweep (default: read from the run directory's lock; the sweep
    itself passes "finished", since it still holds the lock while it writes its final report)."""
    run_dir = Path(run_dir)
    out = run_dir / "pareto"
    out.mkdir(parents=True, exist_ok=True)
    spec = RunStore(run_dir).saved_spec()
    objectives = [(o.name, o.direction) for o in spec.objectives]
    all_trials, front = frames.trials(run_dir), frames.pareto(run_dir)
    all_trials.to_csv(out / "trials.csv", index=False)
    front.to_csv(out / "pareto.csv", index=False)
    bases = {row["model"]: row for row in frames.baselines(run_dir).to_dict("records")}
    sections = []
    for m, method in spec.cells:
        cell = f"{m.label}:{method}"
        done = all_trials[(all_trials["cell"] == cell) & (all_trials["status"] == "done")]
        base = base_point(spec.objectives[:2], bases.get(m.label))
        sections.append(_cell_section(out, spec, cell, done, front[front["cell"] == cell], objectives, base))
    sections.append(paper_section(frames.paper_table(run_dir)))
    sections.append(_cost_section(run_dir, spec))
    page = _page(spec, run_dir, state or frames.sweep_state(run_dir), frames.progress(run_dir), sections,
                 all_trials, [n for n, _ in objectives])
    (out / "index.html").write_text(page)
    return front


def base_point(objectives: list, baseline: dict | None) -> list[tuple[float, float]] | None:
    """The base model's (value, standard error) on each objective: 0 for one measured against the base
    model, else its baseline metric; None when the base model has no score for one of them."""
    if baseline is None:
        return None
    point = []
    for o in objectives:
        if o.relative_to_base:
            point.append((0.0, 0.0))
            continue
        value, se = baseline.get(o.metric), baseline.get(f"{o.metric}_se")
        if value is None or pd.isna(value):
            return None
        point.append((float(value), 0.0 if se is None or pd.isna(se) else float(se)))
    return point


def _cell_section(out: Path, spec, cell: str, done: pd.DataFrame, cell_front: pd.DataFrame,
                  objectives: list[tuple[str, str]], base: list[tuple[float, float]] | None = None) -> str:
    names = [n for n, _ in objectives]
    figures = []
    if len(names) >= 2 and not done.empty:
        png = _front_png(cell, done, cell_front, names[:2], base)
        (out / f"{_slug(cell)}.png").write_bytes(png)
        figures.append(_img(png, f"Pareto front of {cell}", "pareto-front"))
    curve, reference = hypervolume_history(done, objectives)
    if not curve.empty:
        figures.append(_img(_hypervolume_png(cell, curve, reference, names), f"Hypervolume of {cell}", "hypervolume"))
    importance = _importance_block(spec, cell, names)
    body = "".join(figures) or "<p class=note>No finished trial yet.</p>"
    return f'<section><h2>{html.escape(cell)}</h2><div class=figs>{body}{importance}</div></section>'


def hypervolume_history(done: pd.DataFrame, objectives: list[tuple[str, str]]) -> tuple[pd.DataFrame, np.ndarray]:
    """The hypervolume of the cell's front after each finished trial, in trial-number order, every
    objective oriented to minimisation; the reference point is each objective's worst value plus
    REFERENCE_MARGIN of its range (1.0 where all values are equal)."""
    names = [n for n, _ in objectives]
    sign = np.array([1.0 if m == "min" else -1.0 for _, m in objectives])
    rows = done.assign(number=[key_number(k) or 0 for k in done["key"]]).sort_values("number")
    values = rows[names].to_numpy(dtype=float) * sign
    finite = np.all(np.isfinite(values), axis=1)
    rows, values = rows[finite], values[finite]
    if not len(values):
        return pd.DataFrame(columns=["number", "hypervolume"]), np.full(len(names), np.nan)
    span = values.max(axis=0) - values.min(axis=0)
    reference = values.max(axis=0) + np.where(span > 0, REFERENCE_MARGIN * span, 1.0)
    from optuna._hypervolume import compute_hypervolume

    curve = [compute_hypervolume(values[: i + 1], reference) for i in range(len(values))]
    return pd.DataFrame({"number": rows["number"].to_numpy(), "hypervolume": curve}), reference * sign


def param_importances(spec, cell: str, objective: str) -> dict[str, float] | str:
    """lr and mix importance for one objective from the cell's Optuna study (PED-ANOVA), or why not."""
    import optuna

    store = RunStore(spec.run_dir)
    try:
        storage = storage_url(spec.optuna_storage) if spec.optuna_storage else store.optuna_url()   # ${VAR} read here
        study = optuna.load_study(study_name=f"{spec.name}/{cell}", storage=storage)
    except Exception as err:   # no study yet, or storage unreadable: the report still renders
        return f"no study ({type(err).__name__})"
    index = [o.name for o in spec.objectives].index(objective)
    sign = 1.0 if spec.objectives[index].direction == "min" else -1.0   # PED-ANOVA looks for low values
    complete = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return f"needs {MIN_TRIALS_FOR_IMPORTANCE} finished trials (has {len(complete)})"
    try:
        with warnings.catch_warnings():   # its reminder that it ranks low target values: ours are signed so
            warnings.simplefilter("ignore", UserWarning)
            return optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=["lr", "mix"],
                target=lambda t: sign * t.values[index])
    except Exception as err:   # e.g. every value equal
        return f"not computable ({type(err).__name__}: {err})"


def _importance_block(spec, cell: str, names: list[str]) -> str:
    found = {name: param_importances(spec, cell, name) for name in names}
    usable = {n: v for n, v in found.items() if isinstance(v, dict)}
    if usable:
        return _img(_importance_png(cell, usable), f"lr and mix importance in {cell}", "importance")
    reasons = sorted(set(found.values()))
    return f"<p class=note>lr / mix importance: {html.escape('; '.join(reasons))}.</p>"


def _axes():
    """A figure and its axes, made without pyplot: no backend to choose, no global figure to close."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 4))
    return fig, fig.subplots()


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _front_png(cell: str, done: pd.DataFrame, cell_front: pd.DataFrame, axes: list[str],
               base: list[tuple[float, float]] | None = None) -> bytes:
    """The cell's trials, its front and, as the reference every trial moved from, its base model."""
    x, y = axes
    fig, ax = _axes()
    if base is not None:
        (bx, bx_se), (by, by_se) = base
        ax.errorbar([bx], [by], xerr=[bx_se], yerr=[by_se], fmt="s", color="tab:blue", capsize=3,
                    label="base model")
    ax.errorbar(done[x], done[y], xerr=_se(done, x), yerr=_se(done, y), fmt="o", color="0.6", ecolor="0.8",
                capsize=2, label="trials")
    line = cell_front.sort_values(x)
    ax.errorbar(line[x], line[y], xerr=_se(line, x), yerr=_se(line, y), fmt="o-", color="tab:red",
                ecolor="tab:red", capsize=3, label="Pareto front")
    for _, row in line.iterrows():
        ax.annotate(f"#{key_number(row['key'])} lr={row['lr']:.1e}\nmix={row['mix']:.2f}", (row[x], row[y]),
                    fontsize=7, textcoords="offset points", xytext=(5, 4))
    ax.set(xlabel=x, ylabel=y, title=f"{cell}: trials and front (±1 s.e.)")
    ax.margins(0.15)   # room for the labels of the extreme points
    _readable_ticks(ax)
    ax.legend(fontsize=8)
    return _png(fig)


def _readable_ticks(ax) -> None:
    """At most five ticks per axis, in plain numbers (no "+1.999" offset): values that differ in the
    fourth digit otherwise print as overlapping labels."""
    from matplotlib.ticker import MaxNLocator

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(5))
    ax.ticklabel_format(useOffset=False, style="plain")


def _se(frame: pd.DataFrame, name: str):
    column = f"{name}_se"
    if column not in frame or frame[column].isna().all():
        return None
    return frame[column].fillna(0).to_numpy(dtype=float)


def _hypervolume_png(cell: str, curve: pd.DataFrame, reference: np.ndarray, names: list[str]) -> bytes:
    fig, ax = _axes()
    ax.step(curve["number"], curve["hypervolume"], where="post", color="tab:blue")
    ax.plot(curve["number"], curve["hypervolume"], "o", color="tab:blue")
    ref = ", ".join(f"{n}={v:.3g}" for n, v in zip(names, reference))
    ax.set(ylabel="hypervolume", title=f"{cell}: hypervolume of the front")
    ax.set_xlabel(f"trial number\n(reference point: {ref})", fontsize=9)
    ax.set_xlim(curve["number"].min() - 0.5, curve["number"].max() + 0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return _png(fig)


def _importance_png(cell: str, found: dict[str, dict[str, float]]) -> bytes:
    fig, ax = _axes()
    params = ["lr", "mix"]
    width = 0.8 / len(found)
    for i, (name, values) in enumerate(found.items()):
        ax.bar(np.arange(len(params)) + i * width, [values.get(p, 0.0) for p in params], width, label=name)
    ax.set_xticks(np.arange(len(params)) + width * (len(found) - 1) / 2, params)
    ax.set(ylabel="importance (PED-ANOVA, normalised)", ylim=(0, 1), title=f"{cell}: lr / mix importance")
    ax.legend(fontsize=8)
    return _png(fig)


def _img(png: bytes, alt: str, kind: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="{kind}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _slug(cell: str) -> str:
    return cell.replace(":", "-").replace("/", "-")


def _fmt(v) -> str:
    if v is None:   # e.g. the error of a trial that has none
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return html.escape(str(v))


def _table(frame: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f'<table id="{table_id}" class=sortable><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


PAPER_HEADERS = {"w1": "W1", "valid_rate": "valid rate", "support_violation_rate": "support violation",
                 "mean_error": "mean error", "variance_error": "variance error", "gof_pass": "GoF pass"}


def paper_section(table: pd.DataFrame) -> str:
    """The paper's table as HTML: a row per (cell, split, trial), the base model's row first and shaded,
    each metric as value ± standard error; `python -m orchestrator.results RUN --paper` prints the same."""
    title = "<h2>Beside the paper</h2>"
    if table.empty:
        return f"<section>{title}<p class=note>No sampled evaluation in this run: no paper metrics.</p></section>"
    note = ("<p class=note>The paper's metrics on the sampled evaluation, per cell and split: the base model, then "
            "each Pareto-front trial; ± one standard error (mean within family, then over families). W1 raw on "
            "valid samples; GoF pass: the share of prompts whose KS / chi-square test does not reject at 0.05. "
            "Lower is better but for valid rate and GoF pass. A dash: no value, e.g. W1 and the moment errors "
            "where a family has no valid sample (it is not dropped from the average).</p>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["cell", "split", "trial", "lr", "mix",
                                                         *PAPER_HEADERS.values()])
    body, previous = [], None
    for row in table.to_dict("records"):
        group = (row["cell"], row["split"])
        first = group != previous
        previous = group
        base = row["trial"] == "base model"
        cells = [html.escape(row["cell"]) if first else "", html.escape(row["split"]) if first else "",
                 html.escape(str(row["trial"])), _fmt(row["lr"]), _fmt(row["mix"]),
                 *(html.escape(frames.with_se(row[m], row[f"{m}_se"])) for m in PAPER_HEADERS)]
        klass = " ".join(c for c in ("base" if base else "", "group" if first else "") if c)
        body.append(f'<tr class="{klass}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<section>{title}{note}<table id="paper" class=paper><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></section>')


STYLE = """body{font-family:system-ui,sans-serif;margin:1.2em 2em;color:#222}h1{margin:0 0 .2em}
.meta{color:#666;margin:0 0 1em}section{margin:1em 0;border-top:1px solid #ddd}h2{margin:.5em 0}
.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}.figs img{width:400px;border:1px solid #eee}
.note{color:#666;max-width:22em}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}th{background:#f4f4f4;cursor:pointer}
th.asc:after{content:" \\25b2"}th.desc:after{content:" \\25bc"}
table.paper td:nth-child(-n+3),table.paper th:nth-child(-n+3){text-align:left}table.paper tr.base td{background:#f7f7f0}
table.paper tr.group td{border-top:2px solid #999}table.paper th{cursor:default}
section>.note{max-width:60em}"""

SORT_SCRIPT = """document.querySelectorAll('table.sortable th').forEach(function(th){
 th.addEventListener('click', function(){
  var col = th.cellIndex, table = th.closest('table'), body = table.tBodies[0], asc = !th.classList.contains('asc');
  table.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
  th.classList.add(asc ? 'asc' : 'desc');
  var rows = Array.from(body.rows), value = function(r){var t = r.cells[col].textContent, n = parseFloat(t);
   return isNaN(n) || !/^[-+0-9.eE]+$/.test(t.trim()) ? t : n;};
  rows.sort(function(a, b){var x = value(a), y = value(b), c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0)
   : (typeof x === 'number' ? -1 : 1); return asc ? c : -c;});
  rows.forEach(function(r){body.appendChild(r);});
 });
});"""


def _page(spec, run_dir: Path, state: str, progress: pd.DataFrame, sections: list[str],
          all_trials: pd.DataFrame, names: list[str]) -> str:
    durations = {"s_per_trial": "per trial", "eta_s": "ETA"}   # seconds, shown as 1h05m
    shown = progress.assign(**{c: progress[c].map(frames.duration) for c in durations}).rename(columns=durations)
    columns = [c for c in ["key", "cell", "status", "lr", "mix", *[x for n in names for x in (n, f"{n}_se")],
                           "train/loss", "train_wall_s", "eval_wall_s", "error"] if c in all_trials.columns]
    title = f"CFT sweep {html.escape(spec.name)}"
    meta = (f"{html.escape(str(run_dir.resolve()))} &middot; sweep {html.escape(state)} "
            f"&middot; {len(spec.cells)} cells &times; {spec.trials_per_cell} "
            f"trials &middot; objectives: {html.escape(', '.join(names))} &middot; written "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title><style>{STYLE}</style></head>"
            f"<body><h1>{title}</h1><p class=meta>{meta}</p>{_table(shown, 'progress')}{''.join(sections)}"
            f"<section><h2>All trials</h2><p class=note>Click a column to sort.</p>"
            f"{_table(all_trials[columns], 'trials')}</section><script>{SORT_SCRIPT}</script></body></html>")


def _cost_section(run_dir: Path, spec) -> str:
    """Per cell and in total: the GPU-hours and CPU-hours its ended trials held, the planner's estimate
    for the same trials, and dollars (orchestrator.tracking.cost)."""
    from orchestrator.gpu_catalog import PRICES_AS_OF
    from orchestrator.tracking.cost import cost_table

    table = cost_table(frames.trials(run_dir)).rename(columns={"gpu_hours": "GPU-hours held", "planned_gpu_hours": "GPU-hours planned",
                                           "cpu_hours": "CPU-hours held", "dollars": "dollars"})
    budget = f" Budget: {html.escape(spec.budget.describe())}." if getattr(spec, "budget", None) else ""
    return (f"<section><h2>Cost</h2><p class=note>What the trials held while training and while scored "
            f"(resources x time held); planned: the planner's estimate (--plan) for the same trials; dollars at "
            f"on-demand prices ({html.escape(PRICES_AS_OF)}) where the node type's instance has one.{budget}</p>"
            f"{_table(table, 'cost')}</section>")


def format_front(front: pd.DataFrame, objectives: list, baselines: pd.DataFrame | None = None) -> str:
    """The table the sweep prints when it ends: per cell, its base model's row, then each front point
    with every objective as value ± standard error. `objectives` are the spec's Objectives; a
    relative_to_base objective is 0 for the base model by definition, another is its baseline metric."""
    if front.empty:
        return "(no finished trials yet)"
    names = [o.name for o in objectives]
    base = {} if baselines is None else {row["model"]: row for row in baselines.to_dict("records")}
    rows = []
    for cell, points in front.groupby("cell", sort=True):
        model = points["model"].iloc[0]
        rows.append({"cell": cell, "trial": "base model", "lr": "", "mix": "",
                     **{o.name: _base_value(o, base.get(model)) for o in objectives}})
        rows += [{"cell": cell, "trial": p["key"], "lr": f"{p['lr']:.4g}", "mix": f"{p['mix']:.4g}",
                  **{n: frames.with_se(p[n], p.get(f"{n}_se")) for n in names}} for p in points.to_dict("records")]
    return pd.DataFrame(rows, columns=["cell", "trial", "lr", "mix", *names]).to_string(index=False)


def _base_value(objective, baseline: dict | None) -> str:
    if objective.relative_to_base:
        return "0"
    if baseline is None:
        return "(not scored)"
    return frames.with_se(baseline.get(objective.metric), baseline.get(f"{objective.metric}_se"))
