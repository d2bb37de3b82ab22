"""postermap: a large image collection as one zoomable map of visual similarity.

From Python: ``postermap.build(source, workspace, **settings)`` and
``postermap.open(workspace)`` return a :class:`postermap.api.Map` (see :mod:`postermap.api`).
They are imported on first use, so ``import postermap`` (and the CLI) stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Map", "build", "open"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from postermap import api

        return getattr(api, name)
    raise AttributeError(f"module 'postermap' has no attribute {name!r}")
