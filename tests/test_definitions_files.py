"""The example definition files stay true to what they describe."""

from __future__ import annotations

from pathlib import Path

import yaml

from tsunagu.core.computed import RETAIL

ROOT = Path(__file__).resolve().parent.parent


def test_the_retail_traits_file_is_the_set_every_workspace_starts_with() -> None:
    doc = yaml.safe_load((ROOT / "examples" / "retail-traits.yaml").read_text(encoding="utf-8"))
    assert doc == {"computed_traits": RETAIL}
