"""A user's own draft-length policy from a Python file: ``--policy path/to/file.py:ClassName``.

The class follows the same protocol as the built-ins: it subclasses
:class:`sim.policies.base.Policy` and overrides its hooks (``next_tau``, ``observe``, ``reset``,
``fork``, ``plan_batch``, ...; see sim/policies/library.py for examples). Its constructor's keyword
arguments are its ``[policy]`` keys. :func:`load_user_policy` imports the file (it runs: give
only files you trust), checks the class and registers it in :data:`sim.policies.library.POLICIES` under
the spec itself, so a scenario's ``[policy] name = "path/to/file.py:ClassName"`` works wherever a
built-in name does (``simulate``, ``whatif``, worker processes, which load it again), and
:func:`sim.policies.library.make_policy` builds it from the same spec (the live decoder's ``--policy``).
A class without its own ``name`` is named after itself in traces.
Relative paths are taken from the current directory. A missing file, a file that fails to
import, a missing class or one that is not a Policy is a one-line SpecsimError.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from sim.policies.base import Policy
from tracing.errors import SpecsimError


def is_user_policy(name: str) -> bool:
    """True when a policy name is a ``FILE.py:ClassName`` spec."""
    path, sep, cls = name.rpartition(":")
    return bool(sep and path.endswith(".py") and cls)


def load_user_policy(spec: str, registry: dict[str, type[Policy]]) -> type[Policy]:
    """The class ``spec`` names, registered in ``registry`` (:data:`sim.policies.library.POLICIES`,
    passed in so that this module does not import the built-ins) under ``spec``."""
    if spec in registry:
        return registry[spec]
    path_text, _, cls_name = spec.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise SpecsimError(f"--policy {spec}: {path}: no such file")
    module_name = f"specsim_user_policy_{abs(hash(str(path.resolve())))}"
    loader = importlib.util.spec_from_file_location(module_name, path)
    if loader is None or loader.loader is None:
        raise SpecsimError(f"--policy {spec}: {path}: not a Python file")
    module = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = module
    try:
        loader.loader.exec_module(module)
    except Exception as exc:  # the user's code: any failure is reported in one line
        sys.modules.pop(module_name, None)
        raise SpecsimError(f"--policy {spec}: {path} fails to import: "
                           f"{type(exc).__name__}: {exc}") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise SpecsimError(f"--policy {spec}: {path} has no class {cls_name}")
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise SpecsimError(f"--policy {spec}: {cls_name} is not a policy (subclass "
                           "sim.policies.base.Policy and override next_tau / observe)")
    if "name" not in vars(cls):  # the built-ins' "fixed" would misname it in a trace
        cls.name = cls_name
    registry[spec] = cls
    return cls


__all__ = ["is_user_policy", "load_user_policy"]
