"""A finished (or interrupted) search as static files: PNGs and one self-contained index.html.

    python -m analysis.report --experiment NAME [--storage DIR] [--out DIR]

Reads the Ray experiment folder and the Optuna study (no Ray cluster needed),
writes the figures and the page to ``<storage>/<name>/report/`` (or ``--out``),
and attaches them to the search's parent MLflow run.
"""

from __future__ import annotations

import html
import logging
import math
import sys
import warnings
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution, IntDistribution

from analysis.page_style import PAGE_STYLE
from trainables.core.layout import OPTUNA_KEY, REPORT_DIR, sampled_params
from trainables.core.usage import Parser, fail, setup_logging
from trainables.study.export.best_config import rechecked
from trainables.study.plan.search_plan import PlanError, SearchPlan, read_plan
from trainables.study.recheck.stats import TIE_SES, is_tie
from trainables.study.recheck.table import runs_spent, sampled_text
from trainables.study.records.trainings import read_training, training_files
from trainables.study.records.trials import (StudyDamaged, StudyNotFound, load_optuna_study, load_trials, search_trials,
                                             status_counts, study_folder)
from trainables.study.result import OBJECTIVE
from trainables.study.tracking.sqlite_store import StoreDamaged, check_store
from trainables.study.tracking.ui import runs_url, view_key

log = logging.getLogger(__name__)
EDGE_FRACTION = 0.05
STYLE = PAGE_STYLE


def importances(study) -> dict[str, float]:
    """PED-ANOVA importance of every sampled hyperparameter, conditional ones included (fANOVA drops them)."""
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return {}
    with warnings.catch_warnings():  # PED-ANOVA is experimental in Optuna and says so on every call
        warnings.simplefilter("ignore")
        return optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())


def edge_warnings(study) -> list[str]:
    """Hyperparameters whose best value lies within 5% of an end of their range (log scale where sampled so)."""
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    if not complete:
        return []
    best = max(complete, key=lambda t: t.value)
    warnings = []
    for name, value in best.params.items():
        dist = best.distributions[name]
        if not isinstance(dist, (FloatDistribution, IntDistribution)) or dist.high == dist.low:
            continue
        lo, hi, v = dist.low, dist.high, value
        if dist.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(v)
        where = (v - lo) / (hi - lo)
        if where <= EDGE_FRACTION or where >= 1 - EDGE_FRACTION:
            side = "lower" if where <= EDGE_FRACTION else "upper"
            warnings.append(f"best {name} = {value:.4g} lies at the {side} edge of its range "
                            f"[{dist.low:.4g}, {dist.high:.4g}]: widen the range and search again")
    return warnings


def seed_rechecks(storage: Path, experiment: str) -> list[dict]:
    """Final-training results (``trainables.train`` outputs under ``<storage>/train``) of this search's exports."""
    found = []
    for path in training_files(storage):
        metrics = read_training(path)
        if (metrics.get("provenance") or {}).get("experiment") == experiment:
            found.append({"folder": path.parent.name, **{k: metrics.get(k) for k in
                          ("ev", "ev_std", "r_mean", "seeds", "inner_ev", "inner_ev_std", "noise_ceiling_ev")},
                          "search_value": metrics["provenance"].get("value")})
    return found


def _number(value, spread=None) -> str:
    """``0.1234 ± 0.0056``, ``0.1234``, or empty where there is no value (a ridge readout has no inner EV)."""
    if value is None:
        return ""
    return f"{value:.4f}" + ("" if spread is None else f" ± {spread:.4f}")


def _table(rows: list[list], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def build_report(storage: Path, name: str, out: Path | None = None, attach: bool = True) -> Path:
    """Write the figures and index.html of a search; return the page's path.

    ``attach``: also log the report's files to the search's parent MLflow run.
    """
    from analysis import study_plots  # matplotlib: imported once the study is found (a refused command skips it)

    folder = study_folder(storage, name)
    plan = read_plan(folder)
    everything = load_trials(folder)
    study = load_optuna_study(folder, plan.name)
    rechecks = seed_rechecks(storage, plan.name)
    if attach:
        check_store(plan.tracking_uri(folder))
    out = Path(out) if out else folder / REPORT_DIR  # made only once the study's files have been read
    out.mkdir(parents=True, exist_ok=True)
    top = rechecked(plan, everything)
    trials = search_trials(everything)  # the figures show the searcher's trials; the re-check has its own table
    counts = status_counts(trials)
    references = dict(plan.references)
    answer, figures = None, []
    scored = [t for t in trials if t.results]
    if scored:
        figures.append(("Optimisation history", study_plots.plot_history(scored, out / "history.png", references)))
        if max(t.epochs for t in scored) > 1:  # readout studies report once: no curve to draw
            figures.append(("Learning curves", study_plots.plot_learning_curves(
                scored, out / "learning_curves.png", references=references)))
    imp = importances(study)
    if imp:
        figures.append(("Hyperparameter importance (PED-ANOVA)",
                        study_plots.plot_importance(imp, out / "importance.png")))
    names = {t.config[OPTUNA_KEY]: t.trial_id for t in trials if OPTUNA_KEY in t.config}
    figures.append(("Parallel coordinates", study_plots.plot_parallel(study.trials, out / "parallel.png",
                                                                      names or None, references)))
    scientific = plan.scientific
    if scientific:
        split = "weights" if any("weights" in sampled_params(t.config) for t in trials) else None
        order = None
        dist = next((t.distributions[scientific] for t in study.trials if scientific in t.distributions), None)
        if dist is not None and hasattr(dist, "choices"):
            order = list(dist.choices)
        table = study_plots.isolation_table(trials, scientific, split, order)
        if table:
            answer = (f"Isolation: {scientific}" + (f" by {split}" if split else ""),
                      study_plots.plot_isolation(table, scientific, out / "isolation.png", split, references,
                                                 study_plots.recheck_points(top, scientific, split)))
    warnings = edge_warnings(study)
    if counts["completed"] < 10:
        warnings.append(f"only {counts['completed']} completed trials: importance and isolation are rough")
    best = max((t for t in trials if t.status == "completed" and t.best(OBJECTIVE) is not None),
               key=lambda t: t.best(OBJECTIVE), default=None)
    size_note = input_resolution_note(plan.image_size or plan.data.resolution, trials)
    page = _render(plan, counts, best, warnings, rechecks, imp, figures, top, size_note, answer)
    index = out / "index.html"
    index.write_text(page)
    if attach:
        _attach(plan.tracking_uri(folder), plan.tracking.parent_run_id, out)
    return index


def input_resolution_note(side: int, trials=()) -> str:
    """At what size the study's networks saw the stimuli (a decision, stated in every report).

    ``side``: the stored images' side, px; ``trials``: the study's
    :class:`~trainables.study.records.trials.TrialRecord` list; those whose config sets ``input_size`` saw the images
    resized to it.
    """
    resized = sorted({t.config["input_size"] for t in trials if t.config.get("input_size")})
    if not resized:
        note = (f"Networks saw the stimuli at {side} px, the size stored in the data: no resizing, in readouts and "
                "fine-tuning alike.")
    else:
        note = (f"The stimuli are stored at {side} px; trials whose config sets input_size saw them resized to "
                f"{', '.join(map(str, resized))} px (bilinear, antialiased), the others at {side} px.")
    if side < 224:  # resizing stored images up adds no detail; resizing down is a choice the config states
        note += (" ImageNet-trained networks learnt at 224 px and see small images badly: below 224 px their "
                 "readouts and fine-tuning understate what they reach at the recordings' size.")
    return note


def _figure(title: str, drawn, level: int = 2) -> str:
    """One figure of the page: a heading, the image scaled to the page's width, and its caption."""
    return (f"<h{level}>{html.escape(title)}</h{level}><figure><img src='{html.escape(drawn.path.name)}' "
            f"alt='{html.escape(title)}'><figcaption>{html.escape(drawn.caption)}</figcaption></figure>")


def _answer_line(plan: SearchPlan, best, top) -> str:
    """The study's answer in one sentence: the exported trial, its value of the scientific hyperparameter, its score."""
    chosen = top[0].trial if top else best
    if chosen is None:
        return "No trial completed: the study has no answer yet."
    value = chosen.config.get(plan.scientific) if plan.scientific else None
    what = f"{plan.scientific} = {value} " if value is not None else ""
    if top:
        score = f"re-check mean {_number(top[0].mean, top[0].se)} (SE)"
    else:
        score = f"inner-validation EV {_number(chosen.best(OBJECTIVE))}, one seed (no re-check)"
    return f"Exported: {what}(trial {chosen.trial_id}), {score}."


def _render(plan: SearchPlan, counts, best, warnings, rechecks, imp, figures, top=(), size_note="",
            answer=None) -> str:
    """The page in reading order: the answer (the re-check and the scientific hyperparameter's effect), what
    qualifies it, the exported trial, then the search's figures."""
    parts = [f"<h1>Search {html.escape(plan.name)} ({html.escape(plan.space)})</h1>"]
    parts.append(_table([[plan.sampler, plan.profile, plan.data_fingerprint,
                          counts["completed"], counts["pruned"], counts["failed"], counts["running"]]],
                        ["sampler", "profile", "data", "completed", "pruned", "failed", "unfinished"]))
    parts.append(f"<p>{html.escape(size_note)}</p>")
    parts.append(f"<h2>The answer{': ' + html.escape(plan.scientific) if plan.scientific else ''}</h2>")
    parts.append(f"<p><b>{html.escape(_answer_line(plan, best, top))}</b></p>")
    if top:
        how = ("compared by a paired bootstrap over the inner split's objects (a seed changes nothing in this family)"
               if top[0].deterministic else f"raced over new seeds: {runs_spent(top)} runs")
        parts.append(f"<h3>Top-{len(top)} re-check: {how}</h3><p>Exported: the best mean. The search's own run is "
                     "left out of a network's mean: it was selected for being high. Standard errors combine the "
                     "seeds' and the inner-validation images' (bootstrap over objects)."
                     + (f" #1 and #2 tie (within {TIE_SES:g} standard errors of their difference)." if len(top) > 1
                        and is_tie(top[0], top[1]) else "") + "</p>")
        parts.append(_table([[i, r.trial.trial_id, _number(r.search_value), _number(r.mean, r.se),
                              "-" if r.deterministic else r.n, "left the race" if r.out else "",
                              sampled_text(r.trial.config)] for i, r in enumerate(top, 1)],
                            ["rank", "trial", "search EV", "re-check EV (mean ± SE)", "runs", "", "sampled"]))
    if answer is not None:
        parts.append(_figure(*answer, level=3))
    if plan.references:
        parts.append("<p>For scale, on the trials' inner split (labels only, no pixels; the dashed lines of every EV "
                     "axis): " + ", ".join(f"{html.escape(name)} EV {ev:.4f}" for name, ev in plan.references.items())
                     + ". A model must beat them to be more than object recognition.</p>")
    if warnings:
        parts.append("<div class='warn'><b>Warnings</b><ul>" + "".join(
            f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul></div>")
    if best is not None:
        shown = sampled_params(best.config)
        parts.append(f"<h2>Best trial {html.escape(best.trial_id)}: inner-validation EV "
                     f"{best.best(OBJECTIVE):.4f} after {best.epochs} epoch{'s' if best.epochs > 1 else ''}</h2>")
        parts.append(_table([[k, v] for k, v in shown.items()], ["hyperparameter", "value"]))
    if rechecks:
        parts.append("<h2>Re-trained over seeds (official validation set)</h2>")
        parts.append(_table([[r["folder"], r["seeds"] or 1, _number(r["search_value"]),
                              _number(r["inner_ev"], r.get("inner_ev_std")), _number(r["ev"], r.get("ev_std")),
                              _number(r["r_mean"]), _number(r["noise_ceiling_ev"])]
                             for r in rechecks],
                            ["run", "seeds", "search EV (inner)", "re-trained inner EV", "validation EV",
                             "validation r", "noise ceiling EV"]))
    if figures:
        parts.append("<h2>The search</h2>")
    for title, drawn in figures:
        parts.append(_figure(title, drawn, level=3))
        if drawn.path.name == "importance.png" and imp:
            parts.append(_table([[k, f"{v:.3f}"] for k, v in imp.items()], ["hyperparameter", "importance"]))
    return (f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(plan.name)}"
            f"</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")


def _attach(tracking_uri: str, run_id: str, out: Path) -> None:
    """Log the report's files to the search's parent MLflow run (skipped, with a warning, if unreachable)."""
    from mlflow.tracking import MlflowClient  # seconds of imports, only for a report that is attached

    try:
        MlflowClient(tracking_uri).log_artifacts(run_id, str(out), "report")
    except Exception as err:  # noqa: BLE001 - the files are written either way
        log.warning("could not attach the report to MLflow run %s: %s", run_id, err)


def main(argv=None) -> int:
    parser = Parser(prog="python -m analysis.report", description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", required=True, help="the study's name (its --name)")
    parser.add_argument("--storage", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, help="folder of the figures and index.html (default: <study>/report)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        index = build_report(args.storage, args.experiment, args.out)
    except (StudyNotFound, StudyDamaged, PlanError, StoreDamaged) as err:
        fail(str(err))
    print(f"wrote {index}")
    folder = study_folder(args.storage, args.experiment)
    plan = read_plan(folder)
    uri = plan.tracking_uri(folder)
    page = runs_url(uri, plan.tracking.experiment_id, OBJECTIVE, view_key(OBJECTIVE))  # the study's runs, best first
    print(f"its runs in MLflow: mlflow ui --backend-store-uri {uri}  (then open {page})" if uri.startswith("sqlite:")
          else f"its runs in MLflow: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
