"""What the browser tests share: Debian's Chromium, headless, driven through Playwright."""

import pytest

CHROMIUM = "/usr/bin/chromium"
# No sandbox (tests may run as root), and none of the background traffic a first start would try.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
                 "--no-first-run"]


@pytest.fixture
def browser():
    """A headless Chromium for one test, closed after it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
