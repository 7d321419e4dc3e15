"""One place that knows which optional dependencies are importable.

Optional packages are imported lazily, through :func:`require`, so that ``import
thermo_lightning`` never pays for them and a missing one fails with a message that names
the pip extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from types import ModuleType

# import name -> (pip extra, what to install)
_EXTRAS: dict[str, tuple[str, str]] = {
    "faiss": ("cpu", "faiss-cpu (or faiss-gpu with the `gpu` extra; never both)"),
    "sklearn": ("data", "scikit-learn"),
    "torchvision": ("data", "torchvision"),
    "yaml": ("data", "pyyaml"),
    "scipy": ("test", "scipy"),
}


@cache
def module_available(name: str) -> bool:
    """Return whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require(name: str) -> ModuleType:
    """Import the optional module ``name`` or raise a :class:`ModuleNotFoundError` that says
    which pip extra provides it."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        extra, what = _EXTRAS.get(name, ("all", name))
        raise ModuleNotFoundError(
            f"`{name}` is needed for this feature but is not installed. Install {what}, "
            f"for example `pip install 'thermo-lightning[{extra}]'`."
        ) from err
