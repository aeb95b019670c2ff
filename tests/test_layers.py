"""The shape of the package: the core imports no adapter, adapters never import each other,
and the interfaces people touch (api/, admin/, cli/) stay thin over the layers below."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tsunagu"

# package -> the tsunagu packages it may import (at run time: `if TYPE_CHECKING:` imports
# are annotations, not dependencies)
ALLOWED = {
    "core": {"core"},
    "storage": {"core", "storage"},
    "sql": {"core", "sql"},
    "sources": {"core", "sources"},
    "demo": {"demo"},
    "api": {"core", "api", "pipeline", "sql", "datahub", "__init__"},
    # The admin UI is an adapter over the admin API's operations: it previews, saves and
    # reports through api/ (one validation, one error shape, the numbers the API gives) and
    # reads the core's vocabulary; never a store (`platform` hands it the control store) and
    # never the app that mounts it.
    "admin": {"admin", "core", "api", "sql"},
    # The CLI is thin over `app` (the Platform, `open_control`): it parses arguments and
    # prints. It reads definitions files (core.plan), compiles a segment's SQL for another
    # dialect (sql) and runs the demo generator (demo); never a store or an HTTP handler.
    "cli": {"cli", "core", "app", "sql", "demo", "__init__"},
}
# the core runs anywhere: the standard library and msgspec's structs only
CORE_THIRD_PARTY = {"msgspec"}
# ... and does no I/O: files, sockets, processes, threads and event loops are the adapters'
CORE_NO_IO = {
    "asyncio", "concurrent", "http", "io", "mmap", "multiprocessing", "os", "pathlib", "select", "selectors",
    "shutil", "signal", "socket", "sqlite3", "ssl", "subprocess", "sys", "tempfile", "threading", "urllib",
}  # fmt: skip


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, level) for every import in a file; level > 0 is relative."""
    tree = ast.parse(path.read_text())
    # imports only for type annotations (`if TYPE_CHECKING:`) are not dependencies
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "__init__", node.level))
    return found


def _internal_target(path: Path, module: str, level: int) -> str | None:
    """The top-level tsunagu package (or module) an import in `path` reaches, if any."""
    if level == 0:
        return module.split(".")[1] if module.startswith("tsunagu.") else None
    where = list(path.relative_to(SRC).parent.parts)  # core/kinds/segment.py: ["core", "kinds"]
    base = where[: len(where) - (level - 1)] if level - 1 <= len(where) else []
    parts = [*base, *(module.split(".") if module and module != "__init__" else [])]
    return parts[0] if parts else "__init__"


def _files(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))  # subpackages too (core/kinds/)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_its_layer_allows(package: str) -> None:
    bad = []
    for path in _files(package):
        for module, level in _imports(path):
            target = _internal_target(path, module, level)
            if target is not None and target not in ALLOWED[package]:
                bad.append(f"{path.relative_to(SRC)} imports {'.' * level}{module}")
    assert not bad, f"{package}/ may import only {sorted(ALLOWED[package])}: {bad}"


def test_the_core_needs_nothing_but_the_standard_library_and_msgspec() -> None:
    bad = []
    for path in _files("core"):
        for module, level in _imports(path):
            top = module.split(".")[0]
            if (
                level == 0
                and top != "__future__"
                and top not in sys.stdlib_module_names
                and top not in CORE_THIRD_PARTY
            ):
                bad.append(f"{path.name} imports {module}")
    assert not bad, bad


def test_the_core_does_no_io() -> None:
    bad = []
    for path in _files("core"):
        for module, level in _imports(path):
            if level == 0 and module.split(".")[0] in CORE_NO_IO:
                bad.append(f"{path.name} imports {module}")
    assert not bad, f"core/ is pure: {bad}"


def test_every_package_has_a_rule() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - set(ALLOWED) <= {"web"}, sorted(packages - set(ALLOWED))  # web/: tag.js only


def test_the_core_never_reads_the_clock() -> None:
    # Time is injected: the engine takes `now`, so tests drive weeks in milliseconds.
    for path in _files("core"):
        text = path.read_text()
        for call in ("time.time(", "datetime.now(", "date.today(", "time.monotonic("):
            assert call not in text, f"core/{path.name} calls {call}"


def test_only_app_picks_adapters() -> None:
    # The runtime (pipeline, backfill, history) and every interface speak to the ports
    # (core/ports.py); app.py alone names the stores a platform runs on.
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "storage" or rel == Path("app.py"):
            continue
        for module, level in _imports(path):
            if _internal_target(path, module, level) == "storage":
                bad.append(f"{rel} imports {'.' * level}{module}")
    assert not bad, f"only app.py picks adapters: {bad}"


def test_relative_imports_are_resolved_from_the_importing_module() -> None:
    kinds = SRC / "core" / "kinds" / "segment.py"
    assert _internal_target(kinds, "segments", 2) == "core"
    assert _internal_target(kinds, "kind", 1) == "core"
    assert _internal_target(SRC / "pipeline.py", "core.plan", 1) == "core"
    assert _internal_target(SRC / "api" / "admin.py", "pipeline", 2) == "pipeline"
