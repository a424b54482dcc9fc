"""The committed generated code must match a fresh generation from protos/."""

from __future__ import annotations

from pathlib import Path

from haic_tools import protogen


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in protogen.generate(tmp_path)}
    committed_root = protogen.DEFAULT_OUT
    committed = {
        p.relative_to(committed_root): p.read_bytes()
        for p in committed_root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert set(fresh) == set(committed), "generated files differ; run `haic protos`"
    stale = sorted(str(path) for path, content in fresh.items() if committed[path] != content)
    assert not stale, f"stale generated code {stale}; run `haic protos`"


def test_every_topic_has_a_contract_message() -> None:
    from services.core import topics

    names = {cls.DESCRIPTOR.full_name for cls in topics.MESSAGE_TYPES.values()}
    assert {
        "haic.v1.VideoUploaded",
        "haic.v1.ClipCandidate",
        "haic.v1.ClipVerdict",
        "haic.v1.Caption",
        "haic.v1.QASet",
        "haic.v1.ScoreRecord",
        "haic.v1.Review",
        "haic.v1.DeadLetter",
    } == names
