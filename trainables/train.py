"""Final training: one configuration, evaluated once on the official validation set.

    python -m trainables.train --config FILE [--data synthetic|PATH] [--profile auto|smoke|full]
                               [--out DIR] [--seeds N]

Writes to DIR: ``metrics.json`` (EV, mean/median r, per-site arrays, noise ceiling
where known), ``predictions_val.npy`` and ``predictions_test.npy``, ``model.pt``
(state dict) with ``config.json``, and the report's figures. With ``--seeds N``
each seed goes to ``DIR/seed_K`` and ``DIR/metrics.json`` holds mean and spread.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from trainables.cli import (add_data_arguments, add_weights_arguments, check_tracking_uri, load_data, profile_message,
                            resolve_data_arguments, weights_policy)
from trainables.core.config import ConfigError, read_config_file
from trainables.core.devices import default_device
from trainables.core.layout import (CONFIG_FILE, FEATURES_DIR, METRICS_FILE, MODEL_FILE, PREDICTIONS_FILE, SEED_DIR,
                                    SITE_RESPONSES_FILE, SITES_FILE, TRAIN_DIR, default_tracking_uri)
from trainables.core.metrics import ceiled_per_site, summarize
from trainables.core.usage import Parser, UsageError, check_writable, fail, quiet_libraries, setup_logging
from trainables.data.schema import DataError, ITData
from trainables.fitting.families import config_of, get_family, reference_scores, validate
from trainables.fitting.family import FinalContext
from trainables.models.weights import WeightsNotFound, fetch_imagenet

log = logging.getLogger("trainables.train")


def evaluate(pred_val: np.ndarray, data: ITData) -> dict:
    """Official-validation scores of predictions (N_val, n_sites), with the noise ceiling where known."""
    scores = summarize(data.spikes_val, pred_val)
    if data.noise_ceiling_val is not None:
        ceiling = data.noise_ceiling_val
        scores["noise_ceiling_ev"] = float(ceiling.mean())
        scores["noise_ceiling_ev_per_site"] = ceiling.tolist()
        # EV / ceiling, site by site then averaged over the sites whose ceiling carries information.
        scores["ev_normalized"] = float(np.nanmean(ceiled_per_site(scores["ev_per_site"], ceiling)))
    return scores


def write_sites(path: Path, columns: dict[str, np.ndarray], ceiling: np.ndarray | None) -> Path:
    """``sites.csv``: one row per site, its noise ceiling (EV) where the data have repetitions, and ``columns`` (name
    -> array (n_sites,): EV and r, of a training or of each seed and their mean), each EV divided by the ceiling
    beside it (:func:`~trainables.core.metrics.ceiled_per_site`)."""
    header = ["site"] + (["noise_ceiling_ev"] if ceiling is not None else [])
    values = {}
    for name, column in columns.items():
        header.append(name)
        values[name] = np.asarray(column, dtype=np.float64)
        if ceiling is not None and name.startswith("ev"):
            ceiled = name.replace("ev", "ev_over_ceiling", 1)
            header.append(ceiled)
            values[ceiled] = ceiled_per_site(values[name], ceiling)
    n = len(next(iter(values.values())))
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for site in range(n):
            row = [site] + ([f"{ceiling[site]:.6f}"] if ceiling is not None else [])
            cells = [values[h][site] for h in header[len(row):]]
            writer.writerow(row + ["" if np.isnan(v) else f"{v:.6f}" for v in cells])
    return Path(path)


def write_json(path: Path, value: dict) -> None:
    """Write ``value`` whole or not at all: a folder's ``metrics.json`` says its training ended."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def train_one(config: dict, data: ITData, out: Path, provenance: dict, feature_cache: Path,
              tracking_uri: str | None = None, parent_run_id: str | None = None, source: str = "synthetic") -> dict:
    """Fit with the config's family, evaluate on the official validation set, write every output to ``out``, log to
    MLflow."""
    # matplotlib, SciPy and MLflow: about 5 s of imports that a refused command does not pay
    from analysis import figures
    from trainables.study.tracking.final import log_final_training
    from trainables.study.tracking.store import data_input

    quiet_libraries()  # again: importing MLflow set its loggers up anew
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = get_family(config["model"]).final_fit(config, data, FinalContext(out, feature_cache))
    pred_val, pred_test, info, model = result.pred_val, result.pred_test, result.info, result.model
    scores = evaluate(pred_val, data)
    if model is not None:
        torch.save(model.state_dict(), out / MODEL_FILE)
    if result.curve:  # against the ideal observers on the inner split its curve is scored on
        figures.plot_learning_curve(result.curve, result.best_epoch, out / "learning_curve.png",
                                    references=reference_scores(data, config, final=False))
    metrics = {
        **scores,
        # Printed beside every model by analysis.compare, so that no one mistakes object recognition for IT.
        "references": reference_scores(data, config, final=True),
        "seed": config["seed"],
        **info,
        "data": data.name,
        "data_fingerprint": data.fingerprint,
        "device": str(default_device()),
        "seconds": time.perf_counter() - start,
        **({"provenance": provenance} if provenance else {}),
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    np.save(out / PREDICTIONS_FILE.format(part="val"), pred_val)
    np.save(out / PREDICTIONS_FILE.format(part="test"), pred_test)
    ev, r = np.array(scores["ev_per_site"]), np.array(scores["r_per_site"])
    write_sites(out / SITES_FILE, {"ev": ev, "r": r}, data.noise_ceiling_val)
    figures.plot_site_distributions(r, ev, out / "site_distributions.png", data.noise_ceiling_val,
                                    references=metrics["references"])
    figures.plot_rdms(data.spikes_val, pred_val, data.object_val, out / "rdm.png")
    figures.plot_site_responses(data.spikes_val, pred_val, data.object_val, ev, out / SITE_RESPONSES_FILE)
    write_json(out / METRICS_FILE, metrics)  # last: the training is done once it is there
    if tracking_uri:
        logged = log_final_training(tracking_uri, config, metrics, out, model, provenance, parent_run_id,
                                    data_input(data.name, data.fingerprint, source))
        metrics["mlflow"] = logged
        write_json(out / METRICS_FILE, metrics)
        log.info("logged to MLflow run %s%s", logged["run_id"],
                 f" (model: {logged['model_uri']})" if logged["model_uri"] else "")
    ceiling = f"  (noise ceiling EV {scores['noise_ceiling_ev']:.4f})" if "noise_ceiling_ev" in scores else ""
    log.info("seed %d: validation EV %.4f  r mean %.4f  r median %.4f%s", config["seed"], scores["ev"],
             scores["r_mean"], scores["r_median"], ceiling)
    return metrics


def summarize_seeds(runs: list[dict]) -> dict:
    """Mean and standard deviation over seeds of the site-averaged scores, and the seeds' mean per site."""
    summary = {"seeds": [m["seed"] for m in runs]}
    for key in ("ev_per_site", "r_per_site"):
        summary[key] = np.mean([m[key] for m in runs], axis=0).tolist()
    for key in ("ev", "r_mean", "r_median", "r2", "inner_ev"):
        if key not in runs[0]:
            continue
        values = np.array([m[key] for m in runs])
        summary[key] = float(values.mean())
        summary[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        summary[f"{key}_per_seed"] = values.tolist()
    for key in ("noise_ceiling_ev", "noise_ceiling_ev_per_site", "references", "data", "data_fingerprint",
                "provenance"):
        if key in runs[0]:
            summary[key] = runs[0][key]
    return summary


def check_own_folder(out: Path, config: dict, seeds: int) -> None:
    """UsageError when ``out`` holds the results of another config (its ``config.json``, or a seed folder's, is not
    ``config``): a final training never overwrites another's."""
    own = [(out, config)] if seeds == 1 else [(out / SEED_DIR.format(seed=config["seed"] + k),
                                                {**config, "seed": config["seed"] + k}) for k in range(seeds)]
    for folder, expected in own:
        try:
            held = json.loads((folder / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            continue
        if config_of(held) != config_of(expected):
            raise UsageError(f"{folder} holds the results of another config (its {CONFIG_FILE} differs): give another "
                             "--out, or move that folder out of the way")


def data_from_provenance(args, provenance: dict) -> list[str]:
    """Use the data an exported config was searched on, for every data flag the user did not set."""
    data = provenance.get("data") or {}
    taken = []
    for flag, key in (("data", "source"), ("data_seed", "data_seed"), ("resolution", "resolution"),
                      ("images_per_object", "images_per_object")):
        if getattr(args, flag) is None and data.get(key) is not None:
            setattr(args, flag, data[key])
            taken.append(f"{flag.replace('_', '-')} {data[key]}")
    if args.data is None:
        args.data = "synthetic"
    if args.data_seed is None:
        args.data_seed = 0
    return taken


def parse_args(argv):
    parser = Parser(prog="python -m trainables.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON config (as exported by the search)")
    add_data_arguments(parser)
    add_weights_arguments(parser)
    parser.add_argument("--storage", type=Path, default=Path("runs"), help="where runs live (default ./runs)")
    parser.add_argument("--out", type=Path,
                        help="output folder (default: <storage>/train/<search name, or config file name>)")
    parser.add_argument("--tracking-uri", help="MLflow URI (default: the search's for an export, "
                                               "else sqlite:///<storage>/mlflow.db)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    parser.add_argument("--seeds", type=int, default=1, help="train this many seeds (config seed, +1, ...)")
    parser.add_argument("--feature-cache", type=Path, help="cache of layer activations for ridge readouts "
                                                           "(default: <storage>/features)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    try:
        if args.seeds < 1:
            raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
        config = read_config_file(args.config)
        provenance = config.pop("provenance", None) or {}
        from_export = data_from_provenance(args, provenance)
        profile = resolve_data_arguments(args)
        config = validate(config, profile.resolution if args.data == "synthetic" else None)
    except ConfigError as err:
        fail(f"{args.config}: {err}" if str(args.config) not in str(err) else str(err))
    except (UsageError, DataError) as err:
        fail(str(err))
    try:
        out = args.out or args.storage / TRAIN_DIR / (provenance.get("experiment") or Path(args.config).stem)
        check_writable(out, "--out" if args.out else "--storage")
        # The config as it trains (the profile's epoch cap applied): what its folder's config.json holds.
        check_own_folder(out, profile.cap_epochs(config_of(config)), args.seeds)
        tracking_uri = None if args.no_mlflow else (
            args.tracking_uri or provenance.get("tracking_uri") or default_tracking_uri(args.storage))
        if tracking_uri:
            check_tracking_uri(tracking_uri)
        # ImageNet weights: from the torch cache, else fetched once (unless --offline), before data or outputs.
        if config["weights"] == "imagenet" and get_family(config["model"]).uses_backbone(config):
            fetch_imagenet(config["backbone"], weights_policy(args))
        # Loaded (and validated) before any output is written: a bad file costs nothing.
        data = load_data(args, profile)
        if args.data != "synthetic":
            validate(config, data.resolution)
        searched = provenance.get("data_fingerprint")
        if searched and searched != data.fingerprint:
            raise UsageError(f"{args.config} was searched on data {searched}, these data are {data.fingerprint}: train "
                             "it on the search's data (leave out the data flags), or drop its 'provenance' to train it "
                             "as a config of its own")
    except (ConfigError, UsageError, WeightsNotFound, DataError) as err:
        fail(str(err))
    log.info("%s", profile_message(args.data, profile))
    if from_export:
        log.info("data settings from the export's provenance: %s", ", ".join(from_export))
    log.info("data %s", data.describe())
    config = profile.cap_epochs(config_of(config))
    feature_cache = args.feature_cache or args.storage / FEATURES_DIR
    if args.seeds == 1:
        metrics = train_one(config, data, out, provenance, feature_cache, tracking_uri, source=args.data)
    else:
        from trainables.study.tracking.final import (  # MLflow: see train_one
            close_seeds_run,
            start_seeds_run,
        )

        quiet_libraries()  # again: importing MLflow set its loggers up anew
        parent = start_seeds_run(tracking_uri, out, args.seeds, provenance) if tracking_uri else None
        seeds = [config["seed"] + k for k in range(args.seeds)]
        runs = [train_one({**config, "seed": seed}, data, out / SEED_DIR.format(seed=seed), provenance, feature_cache,
                          tracking_uri, parent, source=args.data) for seed in seeds]
        metrics = summarize_seeds(runs)
        columns = {"ev_mean": metrics["ev_per_site"], "r_mean": metrics["r_per_site"]}
        for seed, run in zip(seeds, runs):  # each seed's beside the mean
            columns.update({f"ev_seed_{seed}": run["ev_per_site"], f"r_seed_{seed}": run["r_per_site"]})
        write_sites(out / SITES_FILE, columns, data.noise_ceiling_val)
        write_json(out / METRICS_FILE, metrics)
        if parent:
            close_seeds_run(tracking_uri, parent, metrics)
        log.info("over %d seeds: validation EV %.4f +- %.4f, r mean %.4f +- %.4f", args.seeds, metrics["ev"],
                 metrics["ev_std"], metrics["r_mean"], metrics["r_mean_std"])
    print(f"validation EV {metrics['ev']:.4f}  r mean {metrics['r_mean']:.4f}  r median {metrics['r_median']:.4f}"
          + (f"  noise ceiling EV {metrics['noise_ceiling_ev']:.4f}" if "noise_ceiling_ev" in metrics else "")
          + f"\nwrote {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
