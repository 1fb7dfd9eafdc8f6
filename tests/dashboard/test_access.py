"""Usable by keyboard and screen reader, readable, and usable at phone width."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The WCAG contrast ratio of an element's text against the first opaque background
# behind it, computed in the page.
CONTRAST = """(el) => {
  const rgb = (s) => s.match(/[\\d.]+/g).map(Number);
  const lum = (c) => { const [r, g, b] = c.slice(0, 3).map((v) => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  let bg = null, node = el;
  while (node && node.nodeType === 1) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length < 4 || c[3] > 0.99) { if (c.length < 4 || c[3] > 0) { bg = c; break; } }
    node = node.parentElement;
  }
  bg = bg || [255, 255, 255];
  const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def _pages(world: Any, url: str) -> list[str]:
    return [
        url,
        f"{url}batches/{world.batches['nightly']}",
        f"{url}jobs/{world.jobs['transcript']}",
        f"{url}jobs/{world.jobs['transcript']}/transcript",
    ]


def test_landmarks_labels_keyboard_and_contrast(world: Any, acting: Any, page: Any) -> None:
    for address in [*_pages(world, acting.url), f"{acting.url}login"]:
        page.goto(address)
        assert page.get_attribute("html", "lang") == "en"
        for landmark in ("header", "nav", "main", "footer", "h1"):
            assert page.locator(landmark).count() >= 1, (address, landmark)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select')]
                 .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
                 .map((el) => el.id || el.name)"""
        )
        assert unlabelled == [], address
        # The first Tab reaches the skip link, and it leads to the main content.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("location.hash") == "#main"
        for selector in ("main h1", "main p", "header a", ".state", "footer span", "a"):
            for el in page.locator(selector).all()[:5]:
                if el.is_visible():
                    ratio = el.evaluate(CONTRAST)
                    assert ratio >= 4.5, (address, selector, ratio)


def test_every_page_fits_a_phone_screen(
    world: Any, dashboard: Any, browser: Any, shots: Path
) -> None:
    phone = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True,
                                has_touch=True, device_scale_factor=2)  # fmt: skip
    try:
        page = phone.new_page()
        for index, address in enumerate(_pages(world, dashboard.url)):
            page.goto(address)
            assert page.locator('meta[name="viewport"]').count() == 1
            # Nothing makes the page itself scroll sideways: wide tables scroll in their box.
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, (address, width)
            page.screenshot(path=str(shots / f"phone-{index}.png"), full_page=True)
        words = page.locator(".transcript button.w")
        box = words.nth(0).bounding_box()
        assert box is not None and box["height"] >= 20  # big enough to tap
    finally:
        phone.close()
