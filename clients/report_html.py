"""The yield report as text (a funnel table) and as a self-contained HTML page.

The page has no external asset: its plots (matplotlib, Agg backend) are inline SVG, its style inline; every
text from the catalog (stage names, reason codes) is HTML-escaped, since a stage or reason string comes
from a message on a topic, not from this code.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from html import escape
from typing import Any


def _percent(value: float) -> str:
    return f"{value:.2f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def funnel_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(step, videos, % of videos in, clips) per funnel step, then per rejection."""
    rows = [
        (
            step["description"],
            str(step["videos"]),
            _percent(step["percent"]),
            "" if step["clips"] is None else str(step["clips"]),
        )
        for step in report["funnel"]
    ]
    for rejection in report["rejections"]:
        name = f"rejected ({rejection['level']}) {rejection['stage']}: {rejection['reason_code'] or '-'}"
        clips = str(rejection["clips"]) if rejection["level"] == "clip" else ""
        rows.append((name, str(rejection["videos"]), _percent(rejection["percent"]), clips))
    return rows


def review_line(report: dict[str, Any]) -> str:
    """The review desk's summary in one line ('' without captioned clips, or from a gateway that predates it)."""
    review = report.get("review")
    if not review or not review["captioned_clips"]:  # nothing to review yet: no line
        return ""
    line = (
        f"review: {review['captioned_clips']} captioned clips, {review['unreviewed']} unreviewed, "
        f"{review['reviewed']} reviewed once, {review['checked']} checked"
    )
    if review["checks"]:
        line += f"; {review['checks']} checks agree on {_share(review['caption_agreement'])} of captions"
        if review["items_compared"]:
            line += f" and {_share(review['item_agreement'])} of {review['items_compared']} QA items"
    return line


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_table(report: dict[str, Any]) -> str:
    """The funnel, rejections, distributions and stage times as plain-text tables."""
    header = ("step", "videos", "% of in", "clips")
    rows = [header, *funnel_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))

    out = [line(rows[0]), "  ".join("-" * w for w in widths), *(line(row) for row in rows[1:])]
    out.append(
        f"yield: {_percent(report['yield_percent'])} of {report['videos_in']} videos have a judge-passed caption"
    )
    if review_line(report):
        out.append(review_line(report))
    out.append("")
    out.append(f"{'measured value':<44} {'n':>5} {'min':>8} {'p10':>8} {'p50':>8} {'p90':>8} {'max':>8} {'rule':>8}")
    for d in report["distributions"]:
        cells = [d["min"], d["p10"], d["p50"], d["p90"], d["max"], d["threshold"]]
        out.append(f"{d['key']:<44} {d['count']:>5} " + " ".join(f"{_number(v):>8}" for v in cells))
    out.append("")
    out.append(f"{'time per stage':<14} {'videos':>6} {'p50 s':>9} {'p90 s':>9}")
    for t in report["stage_times"]:
        out.append(f"{t['stage']:<14} {t['videos']:>6} {_number(t['p50_s']):>9} {_number(t['p90_s']):>9}")
    return "\n".join(out)


def _histogram_svg(distribution: dict[str, Any]) -> str:
    """The distribution's fixed-bin histogram as an inline <svg> element (with its rule's threshold)."""
    import matplotlib

    matplotlib.use("Agg")  # no display; also keeps the CLI from picking an interactive backend
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0, 2.6))
    axes = figure.subplots()
    edges, counts = distribution["bin_edges"], distribution["bin_counts"]
    if counts:
        widths = [b - a for a, b in itertools.pairwise(edges)]
        axes.bar(edges[:-1], counts, width=[w or 1.0 for w in widths], align="edge", color="#4c72b0", edgecolor="white")
    if distribution.get("threshold") is not None:
        axes.axvline(distribution["threshold"], color="#c44e52", linestyle="--", label="rule")
        axes.legend(loc="upper right", fontsize=8)
    axes.set_title(distribution["label"], fontsize=9)
    axes.set_xlabel(distribution["key"], fontsize=8)
    axes.set_ylabel("clips", fontsize=8)
    axes.tick_params(labelsize=7)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE: the element goes inside the page


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page of the report: funnel table, histograms as inline SVG, stage times."""
    batch = [f"batch {report['batch']}"] if report.get("batch") else []
    if report.get("since"):
        batch.append(f"uploaded from {report['since']}")
    if report.get("until"):
        batch.append(f"until {report['until']}")
    if report.get("video_ids"):
        batch.append(f"{len(report['video_ids'])} listed videos")
    scope = ", ".join(batch) or "every video"
    distributions = report["distributions"]
    dist_rows = [
        (
            d["key"],
            str(d["count"]),
            *(_number(d[k]) for k in ("min", "p10", "p50", "p90", "max", "threshold")),
        )
        for d in distributions
    ]
    plots = (
        "".join(f'<figure class="plot">{_histogram_svg(d)}</figure>' for d in distributions if d["count"])
        or "<p>No clip has pose measurements yet.</p>"
    )
    times = [(t["stage"], str(t["videos"]), _number(t["p50_s"]), _number(t["p90_s"])) for t in report["stage_times"]]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>HAIC yield report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.yield {{ font-size: 1.4em; }}
.plot {{ display: inline-block; margin: 0.5em; }}
</style>
</head>
<body>
<h1>HAIC yield report</h1>
<p>{escape(scope)}; generated {escape(str(report["generated_at"]))}</p>
<p class="yield">Yield: <strong>{escape(_percent(report["yield_percent"]))}</strong> of {report["videos_in"]} videos
have a caption the judge passed (the paper reports 0.31% to 1.3%).</p>
<h2>Funnel</h2>
{_table(("step", "videos", "% of videos in", "clips"), funnel_rows(report))}
{f"<p>{escape(review_line(report))}</p>" if review_line(report) else ""}
<h2>Measured values behind the rules</h2>
{_table(("value", "clips", "min", "p10", "p50", "p90", "max", "rule"), dist_rows)}
{plots}
<h2>Time per stage</h2>
{_table(("stage", "videos", "p50 s", "p90 s"), times)}
</body>
</html>
"""
