"""Generates the Python contracts (gen/python/haic/...) from protos/ with grpc_tools.

One command regenerates them: ``haic protos`` (or ``python -m haic_tools.protogen``).
tests/core/test_protogen.py fails when the committed code differs from a fresh generation.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = REPO_ROOT / "protos"
DEFAULT_OUT = REPO_ROOT / "gen" / "python"


class ProtoGenerationError(RuntimeError):
    """protoc rejected a .proto file."""


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Writes *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto under protos/ into out_dir."""
    import grpc_tools
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    files = proto_files()
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(f.relative_to(PROTO_ROOT)) for f in files),
    ]
    if protoc.main(args) != 0:
        raise ProtoGenerationError(f"protoc failed for {[f.name for f in files]}")
    # Packages for every generated directory, so `import haic.v1.events_pb2` works.
    for directory in {p.parent for p in out_dir.rglob("*_pb2.py")}:
        while directory != out_dir:
            (directory / "__init__.py").touch()
            directory = directory.parent
    return sorted(p for p in out_dir.rglob("*") if p.is_file())


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    for path in generate(out):
        print(path.relative_to(out))


if __name__ == "__main__":
    main()
