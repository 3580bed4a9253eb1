"""Runs comparison for the Jobs tab: overlay metric curves, diff parameters.

Pure functions over the studio store (no UI, no tracker needed: every job's params and
metrics are already in SQLite). The Jobs tab picks two or more training jobs, calls
`compare_runs(store, ids)`, plots `overlay_rows(series, "loss")` and shows the diff.
"""
from __future__ import annotations

from typing import Any

from core.tracking import flatten_params

Series = dict[str, dict[str, list[tuple[int, float]]]]  # job id -> metric -> [(step, value)]

_MISSING = "—"  # shown where a job has no such parameter


def compare_runs(store, job_ids: list[str], kinds: dict | None = None) -> tuple[Series, dict[str, dict[str, Any]]]:
    """Metric series per job and the parameters that differ between the jobs.

    Returns `(series, diff)`: `series[job][metric]` is the list of `(step, value)` in step
    order; a resumed job's curves start with the steps of the run(s) it continues (followed
    through `parent_id`), so a stop + resume reads as one curve. `diff[param][job]` holds
    each job's value for every flattened parameter whose values are not all equal (a job
    lacking the parameter shows "—"); `kinds` (name -> JobKind) lets a kind say where its
    comparable settings sit (`compare_root`). Unknown ids are skipped; order follows
    `job_ids`, duplicates removed.
    """
    ids = list(dict.fromkeys(job_ids))
    series: Series = {}
    params: dict[str, dict[str, Any]] = {}
    for job_id in ids:
        row = store.get_job(job_id)
        if row is None:
            continue
        series[job_id] = _joined_series(store, row)
        root = getattr((kinds or {}).get(row["kind"]), "compare_root", "")
        params[job_id] = _comparable(row.get("params") or {}, root)
        params[job_id]["kind"] = row["kind"]
    keys = sorted({k for p in params.values() for k in p})
    diff: dict[str, dict[str, Any]] = {}
    for key in keys:
        values = {job_id: params[job_id].get(key, _MISSING) for job_id in series}
        if len({repr(v) for v in values.values()}) > 1:
            diff[key] = values
    return series, diff


def _comparable(params: Any, root: str) -> dict[str, Any]:
    """Flat params with the `root` sub-model lifted to the top (its keys win)."""
    if not root or not isinstance(params, dict) or not isinstance(params.get(root), dict):
        return flatten_params(params)
    rest = {k: v for k, v in params.items() if k != root}
    return {**flatten_params(rest), **flatten_params(params[root])}


def _own_series(store, job_id: str) -> dict[str, list[tuple[int, float]]]:
    per: dict[str, list[tuple[int, float]]] = {}
    for m in store.metrics(job_id):
        per.setdefault(m["name"], []).append((int(m["step"]), float(m["value"])))
    for points in per.values():
        points.sort(key=lambda p: p[0])
    return per


def _joined_series(store, row: dict, max_depth: int = 50) -> dict[str, list[tuple[int, float]]]:
    """A job's curves preceded by those of the runs it resumed: each ancestor contributes the
    steps before its child's first step (a resume starts at the saved step, so later
    ancestor points were lost with the stop and are not shown twice)."""
    per = _own_series(store, row["id"])
    seen = {row["id"]}
    parent = row.get("parent_id")
    while parent and parent not in seen and len(seen) < max_depth:
        seen.add(parent)
        prow = store.get_job(parent)
        if prow is None:
            break
        for name, points in _own_series(store, parent).items():
            first = per[name][0][0] if per.get(name) else None
            per[name] = [pt for pt in points if first is None or pt[0] < first] + per.get(name, [])
        parent = prow.get("parent_id")
    return per


def overlay_rows(series: Series, metric: str) -> list[dict[str, Any]]:
    """Long-format rows `{job, step, value}` of one metric, for a line plot with one
    colour per job (gr.LinePlot / pandas)."""
    return [{"job": job_id, "step": step, "value": value}
            for job_id, metrics in series.items() for step, value in metrics.get(metric, [])]


def common_metrics(series: Series) -> list[str]:
    """Metric names every compared job has (what is worth overlaying), sorted."""
    names = [set(m) for m in series.values()]
    return sorted(set.intersection(*names)) if names else []
