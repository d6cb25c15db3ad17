"""A search's trials as rows: the top-trials table, `results.md`, the best model.

Each row joins what the oracle knows of a trial (status, score, hyperparameters, the metrics the
trial reported: parameters, step times) with the record the trial wrote itself
(`trial_<id>/structconv.json`: the reason of a failure, which tuner ran it), which is the only
place a failure's reason survives a distributed search (KerasTuner's gRPC messages carry no
failure message).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import keras

from keras_structconv.tuning.tuners import TRIAL_RECORD

__all__ = ["TrialRow", "format_table", "results_markdown", "save_best_model", "trial_rows"]


@dataclasses.dataclass(frozen=True)
class TrialRow:
    """One trial: id, status, objective score, chosen operators and training values, the
    measurements, the reason of a failure and the tuner that ran it."""

    trial_id: str
    status: str
    score: float | None
    operators: str
    training: str
    params: int | None
    step_ms: float | None
    vanilla_step_ms: float | None
    ratio: float | None
    replicas: int | None
    reason: str | None
    tuner_id: str | None
    values: dict


def _metric(trial, name):
    if not trial.metrics.exists(name):
        return None
    value = trial.metrics.get_last_value(name)
    return None if value is None or math.isnan(value) else float(value)


def _record(tuner, trial_id):
    path = Path(tuner.project_dir) / f"trial_{trial_id}" / TRIAL_RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def trial_rows(tuner) -> list[TrialRow]:
    """Every trial the oracle knows, in trial-id order (the chief's view in distributed mode).

    Example:

    ```python
    rows = trial_rows(tuner)
    print(format_table(rows, top=5))  # best first
    Path("results.md").write_text(results_markdown(rows, "My search", ["data: ..."]))
    ```
    """
    rows = []
    hypermodel = tuner.hypermodel
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        record = _record(tuner, trial_id)
        hp = trial.hyperparameters.copy()
        plan = hypermodel.plan(hp)
        training = hypermodel.training_values(hp)
        epochs = hp.values.get("tuner/epochs")
        step = _metric(trial, "step_time_seconds")
        vanilla = _metric(trial, "vanilla_step_time_seconds")
        params = _metric(trial, "params")
        replicas = _metric(trial, "replicas")
        reason = record.get("reason") or _first_line(trial.message)
        rows.append(
            TrialRow(
                trial_id=trial_id,
                status=str(trial.status),
                score=None if trial.score is None or math.isnan(trial.score) else trial.score,
                operators=plan.describe(),
                training=(
                    f"lr={training['learning_rate']:.3g} wd={training['weight_decay']:.2g} "
                    f"bs={training['batch_size']}" + (f" ep={epochs}" if epochs else "")
                ),
                params=None if params is None else int(params),
                step_ms=None if step is None else step * 1e3,
                vanilla_step_ms=None if vanilla is None else vanilla * 1e3,
                ratio=_metric(trial, "step_time_ratio"),
                replicas=None if replicas is None else int(replicas),
                reason=None if trial.status == "COMPLETED" else reason,
                tuner_id=record.get("tuner_id"),
                values=dict(hp.values),
            )
        )
    return rows


def _first_line(message):
    if not message:
        return None
    lines = [line for line in str(message).strip().splitlines() if line.strip()]
    return lines[-1] if lines else None  # a traceback ends with the exception


def ranked(rows: list[TrialRow], direction: str = "max") -> list[TrialRow]:
    """Completed trials best first, then the others in id order."""
    done = [r for r in rows if r.status == "COMPLETED" and r.score is not None]
    done.sort(key=lambda r: r.score, reverse=direction == "max")
    return done + [r for r in rows if r not in done]


_COLUMNS = ("trial", "status", "score", "operators", "training", "params", "step ms", "ratio",
            "tuner", "reason")


def _cells(row: TrialRow) -> list[str]:
    def number(value, fmt):
        return "-" if value is None else format(value, fmt)

    return [
        row.trial_id,
        row.status,
        number(row.score, ".4f"),
        row.operators,
        row.training,
        number(row.params, ","),
        number(row.step_ms, ".1f"),
        number(row.ratio, ".2f"),
        row.tuner_id or "-",
        row.reason or "",
    ]


def format_table(
    rows: list[TrialRow], top: int | None = None, direction: str = "max", reason_width: int = 80
) -> str:
    """A plain-text table of the `top` best trials (all by default), best first; reasons are
    cut to `reason_width` characters (`results_markdown` keeps them whole)."""
    chosen = ranked(rows, direction)[:top]
    cells = [list(_COLUMNS)] + [_cells(r) for r in chosen]
    for line in cells[1:]:
        if len(line[-1]) > reason_width:
            line[-1] = line[-1][: reason_width - 3] + "..."
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def results_markdown(
    rows: list[TrialRow], title: str, details: list[str], direction: str = "max"
) -> str:
    """`results.md`: a title, `details` lines (command, data, budget), every trial best first."""
    lines = [f"# {title}", ""]
    lines += [f"- {line}" for line in details]
    lines += ["", "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for row in ranked(rows, direction):
        cells = [cell.replace("|", "\\|") for cell in _cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "score: the objective at the trial's best epoch; params: trainable weights; step ms: "
        "median train step on this machine; ratio: over the vanilla backbone's step, timed in "
        "the same process right before the trial.",
        "",
    ]
    return "\n".join(lines)


def save_best_model(tuner, path: str | Path) -> keras.Model | None:
    """Saves the best trial's model (its best epoch's weights) as `.keras`; None if no trial
    completed."""
    completed = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    if not completed:
        return None
    with warnings.catch_warnings():
        # The trial's checkpoint holds its optimizer state, which a rebuilt model's fresh
        # optimizer does not load: only the weights matter here.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = tuner.get_best_models(1)[0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model
