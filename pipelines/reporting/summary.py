"""What ``load``, ``transform`` and ``run`` print: a summary for people, and the same as JSON for machines.

``seconds`` is the whole command, from its start to the summary; ``phases`` say where that time
went (``pipelines/phases.py`` names them) and add up to it, give or take the few milliseconds
between phases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..load import LoadResult
    from ..publishing import Publication
    from ..transform import TransformResult
    from .headlines import Headlines


@dataclass
class CommandSummary:
    """One command's results: the load's, the build's, the headline figures, the publication (each None
    when the command did not do it), and where its time went."""

    command: str
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    load: LoadResult | None = None
    transform: TransformResult | None = None
    headlines: Headlines | None = None
    publication: Publication | None = None


def format_summary(summary: CommandSummary, model_seconds: bool = False) -> str:
    """A few lines a person reads after a command: time and phases, rows per table, requests, the
    counter check, the dbt build, what the marts say, the published copy. ``model_seconds``: list each
    model's build time."""
    load, transform = summary.load, summary.transform
    mode = f" ({load.mode})" if load is not None and load.mode else ""
    lines = [f"Done in {summary.seconds:.1f}s{mode}.",
             "Phases: " + ", ".join(f"{name.replace('_', ' ')} {s:.1f}s" for name, s in summary.phases.items())]
    if load is not None:
        lines += _load_lines(load, summary.phases.get("read", 0.0))
    if transform is not None:
        lines.append(_dbt_line(transform))
        if model_seconds:
            lines.append(format_timings(transform.model_seconds))
    if summary.headlines is not None:
        lines += summary.headlines.sentences()
    publication = summary.publication
    if publication is not None:
        lines.append(
            f"Published for readers: {publication.duckdb_file or '-'} and {publication.parquet_dir or '-'} "
            f"({len(publication.relations)} relations, {publication.bytes / 1e6:,.1f} MB, {publication.seconds:.1f}s)"
        )
    return "\n".join(lines)


def _load_lines(load: LoadResult, read_seconds: float) -> list[str]:
    width = max((len(t) for t in load.rows), default=10)
    lines = [f"  {'table':<{width}}  {'rows now':>10}  {'read':>10}  {'new/changed':>11}"]
    for table, n in load.rows.items():
        lines.append(f"  {table:<{width}}  {n:>10,}  {_num(load.extracted.get(table)):>10}  "
                     f"{_num(load.written.get(table)):>11}")
    requests = load.requests.as_dict()
    total = sum(sum(o.values()) for o in requests.values())
    rate = f" ({total / read_seconds:.0f}/s while reading)" if read_seconds else ""
    lines.append(f"API requests: {total:,}{rate}")
    for endpoint, outcomes in requests.items():
        shown = ", ".join(f"{outcome}: {n:,}" for outcome, n in outcomes.items())
        lines.append(f"  {endpoint:<10} {shown}")
    if load.full_read_reason:
        lines.append(f"Read everything: {load.full_read_reason}.")
    if load.counter_check is not None:
        lines.append(load.counter_check.sentence())
    return lines


def _dbt_line(transform: TransformResult) -> str:
    counts = transform.counts()
    models, tests = counts["models"], counts["tests"]
    return (f"dbt (as of {transform.as_of}): {models['run']} models ({models['passed']} built, "
            f"{models['failed']} failed), {tests['run']} tests ({tests['passed']} passed, {tests['warned']} warned, "
            f"{tests['failed']} failed); manifest.json and run_results.json in {transform.artifacts}")


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def as_json(summary: CommandSummary) -> dict[str, Any]:
    """The machine-readable summary of a command; each part is null when the command did not do it."""
    out: dict[str, Any] = {"command": summary.command, "seconds": round(summary.seconds, 3),
                           "phases": summary.phases}
    load = summary.load
    if load is not None:
        out.update({
            "mode": load.mode,
            "rows": load.rows,
            "read": load.extracted,
            "written": load.written,
            "requests": load.requests.as_dict(),
            "load_ids": load.load_ids,
            "full_read_reason": load.full_read_reason,
            "counter_check": load.counter_check.as_dict() if load.counter_check else None,
        })
    out["dbt"] = summary.transform.as_dict() if summary.transform is not None else None
    out["headlines"] = summary.headlines.as_dict() if summary.headlines is not None else None
    out["published"] = summary.publication.as_dict() if summary.publication is not None else None
    return out


def format_timings(timings: dict[str, float]) -> str:
    """The per-model build times."""
    width = max((len(name) for name in timings), default=10)
    lines = [f"Built {len(timings)} models in {sum(timings.values()):.2f}s:"]
    lines += [f"  {name:<{width}}  {seconds:>7.2f}s" for name, seconds in timings.items()]
    return "\n".join(lines)
