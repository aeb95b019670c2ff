"""Every shell and curl example in README.md and docs/ runs as written (issue 10).

Like datasette's docs tests: the examples are read out of the Markdown (```bash, ```sh,
```shell blocks), and each command runs, in document order, against a demo server made
the way the README makes it (`tsunagu quickstart`, in a fresh directory). Placeholders
are filled the way a reader fills them: `WRITE_KEY` and `$TOKEN` with the keys the quick
start printed, `http://127.0.0.1:8080` with the server's address, `/srv/tsunagu` with a
directory of the test's. A command that cannot run here is listed in `SKIP` with the
reason, so an example added to the docs runs unless someone decides otherwise.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: a command's start -> why it is not run here (each is run elsewhere, or by hand)
SKIP = {
    "pip install": "installs the package: what .ci/run does before the tests",
    "npm ci": "installs the browser tests' packages: what .ci/run does",
    "python -m pytest": "the suite itself, which this test is part of",
    "tsunagu quickstart": "starts a server: this test starts one the same way",
    "tsunagu serve": "starts a server and keeps it running",
    "python bench/": "a benchmark: minutes of load on the whole machine (docs/performance.md)",
    "st run": "a long schemathesis run by hand; tests/api/test_openapi_fuzz.py runs a short one",
}
#: files the examples name as the reader's own
RULE = {"all": [{"did": "buy", "channel": "store"}, {"trait": "member_rank", "op": "eq", "value": "ゴールド"}]}
FILES = {"rule.json": json.dumps(RULE, ensure_ascii=False)}


def examples() -> list[tuple[str, int, str]]:
    """(file, line, command) for every command of every shell block, continuations joined."""
    out = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for block in re.finditer(r"^```(?:bash|sh|shell)\n(.*?)^```", text, re.S | re.M):
            first_line = text[: block.start()].count("\n") + 2
            pending, start = "", 0
            for i, line in enumerate(block.group(1).splitlines()):
                if not pending:
                    start = first_line + i
                pending += line.rstrip()
                if pending.endswith("\\"):
                    pending = pending[:-1] + " "
                    continue
                command = _strip_comment(pending).strip()
                pending = ""
                if command:
                    out.append((str(path.relative_to(ROOT)), start, command))
    return out


def _strip_comment(line: str) -> str:
    """A shell line without its trailing `# comment` (a # inside quotes is kept)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


EXAMPLES = examples()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """`tsunagu quickstart` in a fresh directory, as the README's first command runs it."""
    home = tmp_path_factory.mktemp("readme")
    (home / "examples").symlink_to(ROOT / "examples")
    (home / "defs").symlink_to(ROOT / "examples")  # "your definition files" in docs/segments.md
    for name, content in FILES.items():
        (home / name).write_text(content, encoding="utf-8")
    port = free_port()
    log = (home / "quickstart.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsunagu", "quickstart", "--port", str(port)],
        cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, (home / "quickstart.log").read_text()
        time.sleep(0.3)
    else:
        raise AssertionError("the quick start did not come up:\n" + (home / "quickstart.log").read_text())
    creds = json.loads((home / "tsunagu-data" / "credentials.json").read_text())["demo"]
    yield home, url, creds
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    log.close()


def _prepare(command: str, url: str, creds: dict[str, str], home: Path) -> str:
    command = command.replace("http://127.0.0.1:8080", url).replace("/srv/tsunagu", str(home / "srv"))
    command = re.sub(r"\bWRITE_KEY\b", creds["write_key"], command)
    # curl fails on an HTTP error (4xx, 5xx) and shows its body, so a refused example fails
    return re.sub(r"^curl ", "curl --fail-with-body -sS ", command)


@pytest.mark.parametrize(("doc", "line", "command"), EXAMPLES, ids=[f"{d}:{n}" for d, n, _ in EXAMPLES])
def test_every_shell_example_in_the_docs_runs_as_written(demo, doc: str, line: int, command: str) -> None:
    home, url, creds = demo
    parts = [p.strip() for p in command.split("&&")]
    skipped = next((why for part in parts for start, why in SKIP.items() if part.startswith(start)), None)
    if skipped:
        pytest.skip(skipped)
    env = {**os.environ, "TOKEN": creds["api_token"], "WRITE_KEY": creds["write_key"], "COLUMNS": "200"}
    result = subprocess.run(
        ["bash", "-c", _prepare(command, url, creds, home)], cwd=home, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"{doc}:{line}: {command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"


def test_the_examples_are_found() -> None:
    docs = {d for d, _, _ in EXAMPLES}
    assert {"README.md", "docs/segments.md", "docs/reports.md"} <= docs
    assert any(c.startswith("curl ") for _, _, c in EXAMPLES)
    assert all("\\\n" not in c for _, _, c in EXAMPLES)
