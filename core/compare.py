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


def compare_runs(store, job_ids: list[str]) -> tuple[Series, dict[str, dict[str, Any]]]:
    """Metric series per job and the parameters that differ between the jobs.

    Returns `(series, diff)`: `series[job][metric]` is the list of `(step, value)` in step
    order; `diff[param][job]` holds each job's value for every flattened parameter whose
    values are not all equal (a job lacking the parameter shows "—"). Unknown ids are
    skipped; order follows `job_ids`, duplicates removed.
    """
    ids = list(dict.fromkeys(job_ids))
    series: Series = {}
    params: dict[str, dict[str, Any]] = {}
    for job_id in ids:
        row = store.get_job(job_id)
        if row is None:
            continue
        per: dict[str, list[tuple[int, float]]] = {}
        for m in store.metrics(job_id):
            per.setdefault(m["name"], []).append((int(m["step"]), float(m["value"])))
        for points in per.values():
            points.sort(key=lambda p: p[0])
        series[job_id] = per
        params[job_id] = flatten_params(row.get("params") or {})
        params[job_id]["kind"] = row["kind"]
    keys = sorted({k for p in params.values() for k in p})
    diff: dict[str, dict[str, Any]] = {}
    for key in keys:
        values = {job_id: params[job_id].get(key, _MISSING) for job_id in series}
        if len({repr(v) for v in values.values()}) > 1:
            diff[key] = values
    return series, diff


def overlay_rows(series: Series, metric: str) -> list[dict[str, Any]]:
    """Long-format rows `{job, step, value}` of one metric, for a line plot with one
    colour per job (gr.LinePlot / pandas)."""
    return [{"job": job_id, "step": step, "value": value}
            for job_id, metrics in series.items() for step, value in metrics.get(metric, [])]


def common_metrics(series: Series) -> list[str]:
    """Metric names every compared job has (what is worth overlaying), sorted."""
    names = [set(m) for m in series.values()]
    return sorted(set.intersection(*names)) if names else []
