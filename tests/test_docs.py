"""The docs keep up with the code: every CLI command is documented."""

from __future__ import annotations

from pathlib import Path

import typer.main

from tsunagu.cli.main import app

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _commands(group: typer.Typer, prefix: str = "tsunagu") -> list[str]:
    click_group = typer.main.get_command(group)
    out = []

    def walk(cmd, path: str) -> None:  # type: ignore[no-untyped-def]
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, f"{path} {name}")
        else:
            out.append(path)

    walk(click_group, prefix)
    return out


def test_every_cli_command_is_in_the_cli_reference() -> None:
    reference = (DOCS / "api.md").read_text()
    missing = [c for c in _commands(app) if c not in reference and c != "tsunagu version"]
    assert not missing, f"document these in docs/api.md: {missing}"


def test_the_readme_quick_start_is_two_commands_and_ci_runs_the_second() -> None:
    root = DOCS.parent
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    assert "pip install -e . && tsunagu quickstart" in readme
    assert "pip install -e '.[dev]' && npm ci --no-audit --no-fund && python -m pytest tests" in readme
    assert "pip install -e '.[dev]' && npm ci --no-audit --no-fund && python -m pytest tests" in ci


def test_every_admin_error_status_is_in_the_api_reference() -> None:
    from tsunagu.api.errors import STATUSES

    reference = (DOCS / "api.md").read_text()
    errors = reference[reference.index("## Errors") :]
    missing = [status for status in [*STATUSES, 405] if f"| {status} |" not in errors]
    assert not missing, f"document these statuses in docs/api.md#errors: {missing}"
