"""Loads the modelling stack (pandas, LightGBM and the jobs over them) as lightly as possible.

LightGBM imports scikit-learn, and through it SciPy, whenever they are installed, only to offer
its scikit-learn estimators. candlecast uses LightGBM's native API, so that half-second and
~70 MiB buy nothing: the CLI's model commands and the warm training child load it without them.
"""

from __future__ import annotations

import sys


def lightgbm_without_sklearn() -> None:
    """Imports lightgbm with scikit-learn hidden from it; a no-op once either is loaded."""
    if "lightgbm" in sys.modules or "sklearn" in sys.modules:
        return
    # A None entry makes `import sklearn` raise ImportError, which LightGBM's compat layer
    # takes as "not installed". The entry is removed at once, so sklearn stays importable.
    sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        import lightgbm  # noqa: F401
    finally:
        del sys.modules["sklearn"]


def modeling_stack() -> None:
    """Imports everything a training or an evaluation needs, LightGBM first (see above)."""
    lightgbm_without_sklearn()
    import candlecast.jobs.modeling  # noqa: F401
