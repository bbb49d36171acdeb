"""Take the documentation's screenshots from a running demo: python docs/screenshots.py http://127.0.0.1:8000

Uses Debian's Chromium through Playwright, like the browser tests, and signs in as the demo
admin (admin / admin) for the admin pictures. Name pictures after the URL to take only those:
python docs/screenshots.py http://127.0.0.1:8000 direct-upload.png
"""

import os
import sys
import tempfile
import wave
from pathlib import Path

from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent
PICTURES = ("event-page.png", "admin-preview.png", "admin-list.png", "direct-upload.png")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


# Pictures are lazy: scroll through the page and wait until each is decoded.
LOAD_PICTURES = """async () => {
    window.scrollTo(0, document.body.scrollHeight);
    await Promise.all([...document.images].map(img => img.decode()));
    window.scrollTo(0, 0);
}"""


# A recording's upload slowed to 4 MiB/s, so the picture catches its progress bar midway.
SLOW_UPLOADS = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 4 * 1024 * 1024}


def main(base: str, pictures: tuple[str, ...] = PICTURES) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 800})

        if "event-page.png" in pictures:
            page.goto(f"{base}/")
            page.click("text=PyCon Demo")
            page.wait_for_load_state("networkidle")
            page.evaluate(LOAD_PICTURES)
            page.screenshot(path=DOCS / "event-page.png", full_page=True)

        page.goto(f"{base}/admin/login/?next=/admin/events/event/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "admin")
        page.click("input[type=submit]")
        if "admin-preview.png" in pictures:
            admin_preview(page)
        if "admin-list.png" in pictures:
            admin_list(page, base)
        if "direct-upload.png" in pictures:
            direct_upload(page, base)
        browser.close()
    print(f"wrote {', '.join(str(DOCS / name) for name in pictures)}")


def admin_preview(page) -> None:
    page.click("text=PyCon Demo")
    page.wait_for_load_state("networkidle")
    page.evaluate(LOAD_PICTURES)
    # The form down to the first session's recording: thumbnails and variants, then a player.
    bottom = page.locator(".keyed-storage-current audio").first.bounding_box()
    height = int(bottom["y"] + bottom["height"] + 90)
    page.set_viewport_size({"width": 1100, "height": height})
    page.screenshot(path=DOCS / "admin-preview.png")


def admin_list(page, base: str) -> None:
    # A list: each photo's smallest variant that fits, beside the size of the original.
    page.set_viewport_size({"width": 1100, "height": 800})
    page.goto(f"{base}/admin/events/speaker/")
    page.click("#toggle-nav-sidebar")  # the list, not the admin's menu
    page.wait_for_load_state("networkidle")
    page.evaluate(LOAD_PICTURES)
    table = page.locator("#result_list").bounding_box()
    page.screenshot(
        path=DOCS / "admin-list.png",
        clip={"x": 0, "y": 0, "width": 1100, "height": table["y"] + table["height"] + 24},
    )


def direct_upload(page, base: str) -> None:
    """A session's recording on its way straight to storage: the progress bar and cancel button."""
    page.set_viewport_size({"width": 1100, "height": 800})
    page.goto(f"{base}/admin/events/session/")
    page.locator("#result_list tbody a").first.click()
    box = page.locator(".keyed-storage-direct").filter(has=page.locator("#id_audio"))
    page.context.new_cdp_session(page).send("Network.emulateNetworkConditions", SLOW_UPLOADS)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "keynote.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(48_000)
            out.writeframes(os.urandom(32 * 1024 * 1024))
        page.set_input_files("#id_audio", str(path))
        page.wait_for_function(
            "bar => bar.max > 1 && bar.value / bar.max > 0.4", arg=box.locator("progress").element_handle()
        )
        area = box.bounding_box()
        page.screenshot(
            path=DOCS / "direct-upload.png",
            clip={"x": 0, "y": area["y"] - 16, "width": 1100, "height": area["height"] + 32},
        )
        box.locator("button.keyed-storage-cancel").click()


if __name__ == "__main__":
    main(
        sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8000",
        tuple(sys.argv[2:]) or PICTURES,
    )
