"""Metric names used by PromQL expressions, and metric names our code exports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan", "atan2",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?!\w)")


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression selects (functions, keywords, labels and durations left out)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = _GROUPING.sub("", text)
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    names = set()
    for match in _IDENT.finditer(text):
        name = match.group(1)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("_sum", "_count", "_created", ""),
    "Gauge": ("",),
}


def defined_metrics(root: Path) -> dict[str, str]:
    """Series names -> defining file, from every prometheus_client Counter/Gauge/Histogram/Summary(...)
    call with a literal name under root. Read from the source so that labelled metrics, which appear in a
    scrape only after their first observation, count too."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            first = node.args[0]
            if func not in _SUFFIXES or not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            base = first.value.removesuffix("_total") if func == "Counter" else first.value
            for suffix in _SUFFIXES[func]:
                found[base + suffix] = str(path.relative_to(root.parent))
    return found
