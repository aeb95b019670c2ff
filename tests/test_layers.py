"""The shape of the package: the core imports no adapter, adapters never import each other."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tsunagu"

# package -> the tsunagu packages it may import
ALLOWED = {
    "core": {"core"},
    "storage": {"core", "storage"},
    "api": {"core", "api", "pipeline", "sql", "__init__"},
    "sql": {"core", "sql"},
    "demo": {"demo"},
}
# the core runs anywhere: the standard library and msgspec's structs only
CORE_THIRD_PARTY = {"msgspec"}


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


def _internal_target(package: str, module: str, level: int) -> str | None:
    if level == 0:
        return module.split(".")[1] if module.startswith("tsunagu.") else None
    if level == 1:
        return package
    return module.split(".")[0] if module else "__init__"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_its_layer_allows(package: str) -> None:
    bad = []
    for path in sorted((SRC / package).glob("*.py")):
        for module, level in _imports(path):
            target = _internal_target(package, module, level)
            if target is not None and target not in ALLOWED[package]:
                bad.append(f"{path.name} imports {'.' * level}{module}")
    assert not bad, f"{package}/ may import only {sorted(ALLOWED[package])}: {bad}"


def test_the_core_needs_nothing_but_the_standard_library_and_msgspec() -> None:
    bad = []
    for path in sorted((SRC / "core").glob("*.py")):
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


def test_the_core_never_reads_the_clock() -> None:
    # Time is injected: the engine takes `now`, so tests drive weeks in milliseconds.
    for path in sorted((SRC / "core").glob("*.py")):
        text = path.read_text()
        for call in ("time.time(", "datetime.now(", "date.today(", "time.monotonic("):
            assert call not in text, f"core/{path.name} calls {call}"
