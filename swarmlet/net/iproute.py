"""pyroute2's ``IPRoute`` and ``NetlinkError``, without the rest of pyroute2.

``from pyroute2 import IPRoute`` runs the package's ``__init__``, which imports every API
pyroute2 has (NDB and its SQLite schema, IPDB, nl80211, nftables, ipset, WireGuard, plan9...:
some 160 modules, about 6 MiB of every daemon's memory) to re-export them. swarmlet needs two
names, from two submodules. Importing a submodule still runs its package's ``__init__``, so this
module registers the package without running it, then imports the two submodules. The
``__init__`` runs after all, in full, the first time something asks the package itself for a
name that is not a submodule (``from pyroute2 import NDB``), so other code sees no difference.

The same goes for ``unittest``, which pyroute2's rtnetlink socket imports for ``unittest.mock``
alone: its ``__init__`` (the test runner, loader, ``argparse``, ``difflib``) waits too.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def defer_package_init(name: str) -> None:
    """Put package ``name`` in ``sys.modules`` with its ``__init__`` not yet run: importing
    its submodules works as usual; the first other attribute asked of it runs the ``__init__``.
    Does nothing when the package is imported already."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not a package we can find: the ordinary import says why
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)

    def __getattr__(attr: str) -> object:  # noqa: N807 (a module's __getattr__, PEP 562)
        # `from package import sub` asks for the attribute before importing the submodule.
        if not attr.startswith("__") and importlib.util.find_spec(f"{name}.{attr}"):
            return importlib.import_module(f"{name}.{attr}")
        vars(package).pop("__getattr__", None)
        loader.exec_module(package)
        return getattr(package, attr)

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = package


defer_package_init("pyroute2")
defer_package_init("unittest")

from pyroute2.iproute import IPRoute  # type: ignore[import-untyped]  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]  # noqa: E402

__all__ = ["IPRoute", "NetlinkError", "defer_package_init"]
