"""Files and images: upload with progress, thumbnails that open full size, PDF downloads, avatars."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser import ui
from tests.browser.conftest import api_register, assert_clean, rest, screenshot, unique
from tests.support import ServeProcess

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def png(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def media_enabled(server: ServeProcess) -> None:
    paths = httpx.get(server.base_url + "/openapi.json", timeout=10).json().get("paths", {})
    if "/api/v1/media" not in paths:
        pytest.skip("the server has no /api/v1/media yet (media upload is not mounted)")


def test_image_thumbnail_and_pdf_download(
    open_tab: Any, server: ServeProcess, media_enabled: None, tmp_path: Path
) -> None:
    alice = api_register(server, unique("alice"), "Alice")
    bob = api_register(server, unique("bob"), "Bob")
    rest(server, alice, "POST", "/conversations", json={"kind": "direct", "member_ids": [bob.id]})
    sender, receiver = open_tab().page, open_tab().page
    ui.login(sender, alice)
    ui.login(receiver, bob)
    ui.open_conversation(sender, "Bob")
    ui.open_conversation(receiver, "Alice")

    photo = tmp_path / "sunset.png"
    photo.write_bytes(png(640, 480, (220, 120, 40)))
    sender.get_by_test_id("file-input").set_input_files(str(photo))
    attachment = sender.get_by_test_id("attachment")
    expect(attachment.locator("progress")).to_have_attribute("data-done", "true")
    ui.composer(sender).fill("look at this")
    ui.composer(sender).press("Enter")

    thumb = ui.message(receiver, "look at this").get_by_test_id("image-thumb").locator("img")
    expect(thumb).to_be_visible()
    receiver.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    assert thumb.evaluate("img => img.naturalWidth") <= 320  # the thumbnail, not the original
    thumb.click()
    full = receiver.get_by_test_id("image-full")
    expect(full).to_be_visible()
    receiver.wait_for_function("img => img.complete && img.naturalWidth === 640", arg=full.element_handle())
    screenshot(receiver, "desktop-image")
    receiver.keyboard.press("Escape")
    expect(full).to_have_count(0)

    report = tmp_path / "report.pdf"
    report.write_bytes(PDF)
    sender.get_by_test_id("file-input").set_input_files(str(report))
    expect(sender.get_by_test_id("attachment").locator("progress")).to_have_attribute("data-done", "true")
    sender.get_by_role("button", name="Send").click()
    download_button = receiver.get_by_test_id("file-download").filter(has_text="report.pdf")
    expect(download_button).to_be_visible()
    with receiver.expect_download() as started:
        download_button.click()
    download = started.value
    assert download.suggested_filename == "report.pdf"
    assert Path(download.path()).read_bytes() == PDF
    assert_clean(sender)
    assert_clean(receiver)


def test_avatar_upload(open_tab: Any, server: ServeProcess, media_enabled: None, tmp_path: Path) -> None:
    user = api_register(server, unique("ava"), "Ava")
    page = open_tab().page
    ui.login(page, user)
    page.get_by_role("link", name="Your profile").click()
    face = tmp_path / "face.png"
    face.write_bytes(png(300, 300, (40, 160, 90)))
    page.get_by_test_id("avatar-input").set_input_files(str(face))
    avatar = page.get_by_role("link", name="Your profile").locator("img")
    expect(avatar).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=avatar.element_handle())
    assert rest(server, user, "GET", "/users/me")["avatar_url"]
    screenshot(page, "desktop-profile")
    assert_clean(page)
