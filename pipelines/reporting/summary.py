"""The summary a run prints: for people, and as JSON for machines."""

from __future__ import annotations

from typing import Any

from ...sources.certiverse.planning import clock_note
from ..load import vouchers_state


def format_summary(result: Any, headlines: list[str] | None = None) -> str:
    """A few lines a person can read after a run: rows per table, requests, what the marts say."""
    mode = _voucher_mode(result)
    lines = [f"Done in {result.seconds:.1f}s ({mode})." if mode else f"Done in {result.seconds:.1f}s."]
    width = max((len(t) for t in result.rows), default=10)
    lines.append(f"  {'table':<{width}}  {'rows now':>10}  {'read':>10}  {'new/changed':>11}")
    for table, n in result.rows.items():
        read = result.extracted.get(table)
        written = result.written.get(table)
        lines.append(f"  {table:<{width}}  {n:>10,}  {_num(read):>10}  {_num(written):>11}")
    requests = result.stats.as_dict()
    total = sum(sum(o.values()) for o in requests.values())
    lines.append(f"API requests: {total:,}" + (f" ({total / result.seconds:.0f}/s)" if result.seconds else ""))
    for endpoint, outcomes in requests.items():
        shown = ", ".join(f"{outcome}: {n:,}" for outcome, n in outcomes.items())
        lines.append(f"  {endpoint:<10} {shown}")
    if result.full_read_reason:
        lines.append(f"Read everything: {result.full_read_reason}.")
    if result.info is not None and getattr(result.info, "pipeline", None) and (note := clock_note(
            vouchers_state(result.info.pipeline))):
        lines.append(note)
    if result.counter_check is not None:
        lines.append(result.counter_check.sentence())
    lines += headlines or []
    return "\n".join(lines)


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _voucher_mode(result: Any) -> str:
    info = result.info
    if info is None or not getattr(info, "pipeline", None):
        return ""
    state = vouchers_state(info.pipeline)
    if state.get("mode") == "nightly":
        return f"nightly read, rolling re-check night {state.get('night')}"
    return "full read" if state.get("mode") else ""


def as_json(result: Any, headlines: list[str] | None = None) -> dict[str, Any]:
    """The machine-readable summary of a run."""
    return {
        "seconds": round(result.seconds, 3),
        "mode": _voucher_mode(result),
        "rows": result.rows,
        "read": result.extracted,
        "written": result.written,
        "requests": result.stats.as_dict(),
        "load_ids": list(result.info.loads_ids) if result.info else [],
        "full_read_reason": result.full_read_reason,
        "counter_check": result.counter_check.as_dict() if result.counter_check else None,
        "headlines": headlines or [],
    }


def format_timings(timings: dict[str, float]) -> str:
    """The per-model build times, for the CLI."""
    width = max((len(name) for name in timings), default=10)
    lines = [f"Built {len(timings)} models in {sum(timings.values()):.2f}s:"]
    lines += [f"  {name:<{width}}  {seconds:>7.2f}s" for name, seconds in timings.items()]
    return "\n".join(lines)
