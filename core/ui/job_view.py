"""Pure functions that turn a job's stored rows into what the UI shows.

Kept apart from gradio so they are tested directly and reused by the Jobs tab, the
module panels and the REST API (status text, ETA, log tail, chart frame).
"""
from __future__ import annotations

import time
from typing import Any

MAX_LOG_LINES = 400  # a chatty job must not flood the browser
SMOOTH_ALPHA = 0.1


def eta_seconds(row: dict, now: float | None = None) -> float | None:
    done, total, started = row.get("progress_done") or 0, row.get("progress_total") or 0, row.get("started")
    if not started or done <= 0 or total <= 0 or row.get("status") != "running":
        return None
    elapsed = (now or time.time()) - started
    return elapsed / done * max(total - done, 0.0)


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def status_markdown(row: dict | None, t, queue_position: int | None = None) -> str:
    if row is None:
        return t("panel.no_job")
    status = row["status"]
    parts = [f"**{t('jobs.status.' + status)}** · `{row['id']}` · {row['kind']}"]
    total = row.get("progress_total") or 0
    if total:
        done = row.get("progress_done") or 0
        pct = 100.0 * done / total
        parts.append(f"{row.get('progress_desc') or ''} {done:g}/{total:g} ({pct:.0f}%)")
        eta = eta_seconds(row)
        if eta is not None:
            parts.append(t("panel.eta", eta=fmt_seconds(eta)))
    if queue_position:
        parts.append(t("panel.queued", n=queue_position))
    if row.get("error"):
        parts.append("\n\n" + t("panel.error", error=row["error"]))
    return " · ".join(parts[:-1] + [parts[-1]]) if len(parts) > 1 else parts[0]


def format_logs(rows: list[dict], total: int | None = None, keep: int = MAX_LOG_LINES) -> str:
    """Log lines as text; when only the tail is shown, say how many came before."""
    shown = rows[-keep:]
    lines = [f"{time.strftime('%H:%M:%S', time.localtime(r['ts']))} {r['level'].upper():7s} {r['message']}"
             for r in shown]
    hidden = (total if total is not None else len(rows)) - len(shown)
    if hidden > 0:
        lines.insert(0, f"... +{hidden} ...")
    return "\n".join(lines)


def metric_frame(rows: list[dict], names: tuple[str, ...] | None = None, smooth: tuple[str, ...] = ("loss",)):
    """Long-format DataFrame (step, value, series) with an EMA-smoothed copy of `smooth` series."""
    import pandas as pd

    data: list[dict[str, Any]] = []
    ema: dict[str, float] = {}
    for r in rows:
        if names and r["name"] not in names:
            continue
        data.append({"step": r["step"], "value": r["value"], "series": r["name"]})
        if r["name"] in smooth:
            prev = ema.get(r["name"])
            ema[r["name"]] = r["value"] if prev is None else prev + SMOOTH_ALPHA * (r["value"] - prev)
            data.append({"step": r["step"], "value": ema[r["name"]], "series": r["name"] + " (smoothed)"})
    # Explicit dtypes even when empty: the chart keeps the axis type of its first frame, and an
    # empty object-typed frame would make it draw later values as categories.
    return pd.DataFrame(data, columns=["step", "value", "series"]).astype({"step": "int64", "value": "float64"})
