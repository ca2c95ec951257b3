"""The simulator's shape: trace -> calibrate -> engine -> trace, and no import circle."""

from __future__ import annotations

import ast
from pathlib import Path

SIM = Path(__file__).resolve().parent.parent / "sim"
# Modules that may hold a Trace: calibration reads one; the engine writes one; the entry points
# hand one to calibration; intervals resample one's requests (bootstrap) and hand that over.
TRACE_HOLDERS = {"sim.engine.core", "sim.sweep.replicate", "sim.sweep.intervals", "sim.sweep.whatif", "sim.sweep.execution",
                 "sim.cli", "sim.sweep.capacity", "sim.sweep.tune", "sim.sweep.tune_run"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SIM.rglob("*.py")):
        parts = path.relative_to(SIM.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (function-level ones too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_import_circle_in_sim() -> None:
    mods = _modules()
    graph = {m: {i for i in _imports(p) if i in mods and i != m} for m, p in mods.items()}
    # a package's __init__ importing its own submodules is not a circle of concepts
    graph = {m: {i for i in deps if not i.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for dep in sorted(graph[m]):
            assert state.get(dep) != 1, "import circle: " + " -> ".join([*path, m, dep])
            if dep not in state:
                visit(dep, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_only_calibration_reads_a_trace() -> None:
    readers = {
        m for m, p in _modules().items()
        if {"tracing.trace", "tracing.io"} & _imports(p)
    }
    outside = {m for m in readers - TRACE_HOLDERS if not m.startswith("sim.calibrate")}
    assert not outside, f"modules outside sim/calibrate that read a trace: {sorted(outside)}"
    assert any(m.startswith("sim.calibrate") for m in readers)


# ---- issue 24: sim/ shows its pipeline (added with the sub-package moves) --------------------

TOP_LEVEL_LIMIT = 8


def test_sim_top_level_is_small() -> None:
    top = sorted(p.stem for p in SIM.glob("*.py") if p.stem != "__init__")
    assert len(top) <= TOP_LEVEL_LIMIT, f"sim/ has {len(top)} top-level modules: {top}"


def test_every_sim_sub_package_says_what_it_is_and_names_its_api() -> None:
    import importlib

    for init in sorted(SIM.glob("*/__init__.py")):
        name = f"sim.{init.parent.name}"
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc.split()) >= 20, f"{name}: a one-paragraph docstring"
        package = importlib.import_module(name)
        api = getattr(package, "__all__", [])
        assert api, f"{name}: __all__ names its public API"
        for attr in api:
            assert getattr(package, attr) is not None, f"{name}.{attr}"
