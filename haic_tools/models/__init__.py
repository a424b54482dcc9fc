"""Building the pose models served by Triton: `haic models build` (see build.py)."""


class ModelBuildError(RuntimeError):
    """The model repository cannot be built from the given sources."""
