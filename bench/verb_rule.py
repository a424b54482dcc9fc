"""The metadata stage's verb rule on the labelled descriptions in tests/filter/data/descriptions.jsonl.

    .venv/bin/python bench/verb_rule.py [--set PATH] [--show-errors]

The set: web-video-caption-style descriptions (WebVid-like headlines, with and without verbs), each
labelled has_verb with a category tag and a split: "dev" (written first, the rules were tuned on it)
and "heldout" (written after the rules, not tuned on). A description "has a verb" when it contains a
verb other than "be", participles included ("Running man at sunset"); gerunds inside noun compounds
("running track") are not verbs.

Prints, per split and in all: the share of verb-bearing descriptions the rule drops (what the rule must
keep low: a dropped video is lost for good), recall and precision of "has a verb", the share of verbless
ones caught, and the time per description; then the categories with errors.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from services.filter.metadata import verb_checker

DEFAULT_SET = Path(__file__).resolve().parent.parent / "tests" / "filter" / "data" / "descriptions.jsonl"


@dataclass
class Tally:
    true_pos: int = 0  # has a verb, kept
    false_neg: int = 0  # has a verb, dropped
    false_pos: int = 0  # verbless, kept
    true_neg: int = 0  # verbless, dropped

    def add(self, labelled: bool, found: bool) -> None:
        if labelled:
            self.true_pos += found
            self.false_neg += not found
        else:
            self.false_pos += found
            self.true_neg += not found

    def line(self, name: str) -> str:
        verb_bearing = self.true_pos + self.false_neg
        verbless = self.false_pos + self.true_neg
        recall = self.true_pos / verb_bearing if verb_bearing else float("nan")
        precision = self.true_pos / (self.true_pos + self.false_pos) if self.true_pos + self.false_pos else float("nan")
        caught = self.true_neg / verbless if verbless else float("nan")
        return (
            f"{name:8s} verb-bearing dropped {self.false_neg}/{verb_bearing} ({1 - recall:.1%})  "
            f"recall {recall:.3f}  precision {precision:.3f}  verbless caught {self.true_neg}/{verbless} ({caught:.1%})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_SET)
    parser.add_argument("--show-errors", action="store_true", help="print each misread description")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.set.read_text().splitlines() if line.strip()]
    checker = verb_checker()
    checker.analyse("warm up")  # the first call loads the model
    tallies: dict[str, Tally] = {"all": Tally()}
    errors: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    started = time.perf_counter()
    for row in rows:
        analysis = checker.analyse(row["text"])
        for key in ("all", row.get("split", "dev")):
            tallies.setdefault(key, Tally()).add(row["has_verb"], analysis.has_verb)
        totals[row["category"]] += 1
        if analysis.has_verb != row["has_verb"]:
            errors[row["category"]] += 1
            if args.show_errors:
                kind = "dropped" if row["has_verb"] else "kept"
                print(f"{kind:8s} [{row['category']}] {row['text']!r} verbs={analysis.verbs}")
    elapsed = time.perf_counter() - started

    print(f"verb rule on {len(rows)} labelled descriptions ({args.set.name})")
    for name in ("all", *sorted(k for k in tallies if k != "all")):
        print(tallies[name].line(name))
    print(f"{elapsed / len(rows) * 1000:.1f} ms per description (re-tags cached across descriptions)")
    print("errors by category: " + ", ".join(f"{c} {errors[c]}/{totals[c]}" for c in sorted(errors)))


if __name__ == "__main__":
    main()
