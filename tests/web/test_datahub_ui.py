"""The Datahub pages in Chromium: a Shift_JIS member file uploaded with a progress bar,
its rejects and hint shown, the table's rows, rejects and versions, a rollback — in
Japanese and English, at 1280 and 820 px, nothing wider than the screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tsunagu.storage.control import ControlStore

from ..conftest import Server, Workspace
from .layout import PASSWORD, login

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "datahub" / "members_sjis.csv"


@pytest.mark.parametrize(
    ("locale", "texts"),
    [
        (
            "ja-JP",
            {
                "nav": "データハブ",
                "rejected": "読めなかった行",
                "hint": "文字列として取り込みました",
                "rolled": "戻しました",
            },
        ),
        ("en-US", {"nav": "Datahub", "rejected": "Rejected", "hint": "was read as text", "rolled": "Rolled back to"}),
    ],
)
def test_a_shift_jis_member_file_is_uploaded_checked_and_rolled_back(
    browser: Any, server: Server, workspace: Workspace, locale: str, texts: dict[str, str]
) -> None:
    email = f"dh-{locale}@example.jp"
    ControlStore(server.data_dir / "control.sqlite").create_user(workspace.name, email, PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
    page = context.new_page()
    login(page, server.url, workspace, email)
    page.click(f"nav >> text={texts['nav']}")
    page.wait_for_url(f"{server.url}/ui/datahub")
    assert page.locator("[data-test=no-tables]").is_visible()
    assert not page.locator("label.key").is_visible()  # the key is asked for upserts only
    page.set_input_files("[data-test=file]", str(EXAMPLE))
    page.fill("[data-test=table]", "members")
    page.click("[data-test=import]")
    page.wait_for_selector("[data-test=result] [data-test=imported]")
    result = page.locator("[data-test=result]")
    assert page.inner_text("[data-test=imported]") == "5" and page.inner_text("[data-test=rejected]") == "1"
    text = result.inner_text()
    assert texts["rejected"] in text and "7 fields expected, 4 found" in text and texts["hint"] in text
    assert "cp932" in text and "M000005" in text
    page.screenshot(path=f"/tmp/tsunagu-datahub-{locale[:2]}-1280.png", full_page=True)

    # again, with the points as numbers: the value that is not one is a reject on its line
    page.select_option("[data-test=mode]", "replace")
    page.click("details.advanced summary")
    page.fill("input[name=types]", "ポイント=integer")
    page.click("[data-test=import]")
    expect(page.locator("[data-test=rejected]")).to_have_text("2")
    assert "'たくさん' is not an integer" in result.inner_text()

    page.click("[data-test=open-table]")
    page.wait_for_url(f"{server.url}/ui/datahub/members")
    assert "髙橋 一郎" in page.inner_text("[data-test=sample]") and "12300" in page.inner_text("[data-test=sample]")
    rejects = page.inner_text("[data-test=rejects]")
    assert "7" in rejects and "8" in rejects and "たくさん" in rejects
    with page.expect_download() as dl:
        page.click("[data-test=rejects-csv]")
    assert Path(dl.value.path()).read_bytes().startswith(b"\xef\xbb\xbfline,column,reason,text")
    for width in (1280, 820):
        page.set_viewport_size({"width": width, "height": 900})
        page.reload()
        page.screenshot(path=f"/tmp/tsunagu-datahub-table-{locale[:2]}-{width}.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, width
    page.click("[data-test=rollback-1]")
    page.wait_for_url(f"{server.url}/ui/datahub/members?rolled=1")
    assert texts["rolled"] in page.inner_text("[data-test=rolled]")
    assert "12300" not in page.inner_text("[data-test=sample]")  # version 1 read the points as text: "12,300"
    page.goto(f"{server.url}/ui/datahub")
    page.set_viewport_size({"width": 820, "height": 900})
    assert "members" in page.inner_text("[data-test=tables]")
    page.screenshot(path=f"/tmp/tsunagu-datahub-{locale[:2]}-820.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 820
    context.close()


def test_an_upload_error_names_the_field_and_the_page_needs_a_login(
    browser: Any, server: Server, workspace: Workspace
) -> None:
    import httpx

    r = httpx.get(f"{server.url}/ui/datahub", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    r = httpx.post(f"{server.url}/ui/datahub/import?table=x&filename=a.csv", content=b"a\n1\n")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    email = "dh-error@example.jp"
    ControlStore(server.data_dir / "control.sqlite").create_user(workspace.name, email, PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    login(page, server.url, workspace, email)
    page.goto(f"{server.url}/ui/datahub")
    page.set_input_files("[data-test=file]", str(EXAMPLE))
    page.fill("[data-test=table]", "members")
    page.select_option("[data-test=mode]", "upsert")
    assert page.locator("label.key").is_visible()
    page.fill("[data-test=key]", "nope")
    page.click("[data-test=import]")
    page.wait_for_selector("[data-test=error]")
    assert "key: the source has no column 'nope'" in page.inner_text("[data-test=error]")
    context.close()
