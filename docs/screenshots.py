"""Take the README's screenshots from a running demo: python docs/screenshots.py http://127.0.0.1:8000

Uses Debian's Chromium through Playwright, like the browser tests, and signs in as the demo
admin (admin / admin) for the admin pictures.
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent
PICTURES = ("event-page.png", "admin-preview.png", "admin-list.png")
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


def main(base: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 800})

        page.goto(f"{base}/")
        page.click("text=PyCon Demo")
        page.wait_for_load_state("networkidle")
        page.evaluate(LOAD_PICTURES)
        page.screenshot(path=DOCS / "event-page.png", full_page=True)

        page.goto(f"{base}/admin/login/?next=/admin/events/event/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "admin")
        page.click("input[type=submit]")
        page.click("text=PyCon Demo")
        page.wait_for_load_state("networkidle")
        page.evaluate(LOAD_PICTURES)
        # The form down to the first session's recording: thumbnails and variants, then a player.
        bottom = page.locator(".keyed-storage-current audio").first.bounding_box()
        height = int(bottom["y"] + bottom["height"] + 90)
        page.set_viewport_size({"width": 1100, "height": height})
        page.screenshot(path=DOCS / "admin-preview.png")

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
        browser.close()
    print(f"wrote {', '.join(str(DOCS / name) for name in PICTURES)}")


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8000")
