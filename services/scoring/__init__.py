"""Scoring: answer parsing (and, to come, per-category accuracy of answerers on QA sets)."""
