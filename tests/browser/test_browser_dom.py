"""The helpers every page script shares (static/js/dom.js), run in Chromium as the pages load them:
fmt writes numbers exactly as the server's templates do, so a value reads the same whether the
page was rendered or updated in place."""

from __future__ import annotations

import math

import pytest
from playwright.sync_api import Page

from app.web.templating import fmt

# Values where JavaScript's own formatting and Python's part: signs of zero, exponent padding,
# trailing zeros, the switch to e-notation at both ends, exact ties (Python rounds them to even,
# toFixed and toExponential away from zero) and the non-finite ones.
TRICKY = [
    0.0,
    -0.0,
    1e-5,
    -1.5e-7,
    123456.78,
    1e6,
    2.5,
    0.1 + 0.2,
    1 / 3,
    math.nan,
    math.inf,
    -math.inf,
    1e21,
    -0.00001,
    1e-4,
    9.99995e-5,
    999999.99995,
    1 / 32,  # 0.03125: a tie at four decimals
    -3 / 32,
    1062500.0,  # 1.0625e+06: a tie at three decimals of the mantissa
    1000500.0,
    12.5,
    -1.7976931348623157e308,
    5e-324,
    100.0,
    -42.0,
]


def js_fmt(page: Page, values: list[float], digits: int) -> list[str]:
    """dom.js's fmt on each value, imported in the page the way the lesson scripts import it."""
    return page.evaluate(
        """async ([values, digits]) => {
            const { fmt } = await import("/static/js/dom.js");
            return values.map((v) => fmt(v, digits));
        }""",
        [values, digits],
    )


@pytest.mark.parametrize("digits", [4, 2, 0, 6])
def test_dom_fmt_writes_every_tricky_number_as_the_server_fmt_does(page: Page, digits: int) -> None:
    page.goto("/")
    expected = [fmt(v, digits) for v in TRICKY]
    assert js_fmt(page, TRICKY, digits) == expected


def test_dom_fmt_defaults_to_four_digits_and_spells_out_the_examples(page: Page) -> None:
    page.goto("/")
    got = page.evaluate(
        """async () => {
            const { fmt } = await import("/static/js/dom.js");
            return [fmt(1e-5), fmt(-0), fmt(NaN), fmt(-Infinity), fmt(0.1 + 0.2), fmt("2.50")];
        }"""
    )
    assert got == ["1.000e-05", "-0", "nan", "-inf", "0.3", "2.5"]
    assert got == [fmt(1e-5), fmt(-0.0), fmt(math.nan), fmt(-math.inf), fmt(0.1 + 0.2), "2.5"]


BIND_KEYS_PAGE = """async () => {
    const { bindKeys } = await import("/static/js/dom.js");
    document.body.insertAdjacentHTML(
        "beforeend",
        '<input type="text" id="t"><input type="number" id="n"><input type="range" id="r">'
            + '<textarea id="a"></textarea><select id="s"><option>1</option></select>',
    );
    window.__keys = [];
    bindKeys({
        ArrowRight: (event) => (window.__keys.push(`used ${event.target.id || "page"}`), true),
        ArrowLeft: (event) => (window.__keys.push(`passed ${event.target.id || "page"}`), false),
    });
    // The window hears a key after the document: it records whether bindKeys prevented it.
    window.addEventListener("keydown", (event) => {
        if (event.key.startsWith("Arrow")) {
            window.__keys.push(`${event.key} prevented=${event.defaultPrevented}`);
        }
    });
}"""


def test_bind_keys_leaves_typing_fields_and_modified_keys_alone_and_prevents_used_keys(
    page: Page,
) -> None:
    page.goto("/")
    page.evaluate(BIND_KEYS_PAGE)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Control+ArrowRight")
    for field in ("#t", "#n", "#a", "#s"):
        page.locator(field).focus()
        page.keyboard.press("ArrowRight")
    page.locator("#r").focus()  # a slider is no typing field: the lesson has its arrows
    page.keyboard.press("ArrowRight")
    assert page.evaluate("window.__keys") == [
        "used page",
        "ArrowRight prevented=true",
        "passed page",
        "ArrowLeft prevented=false",
        "ArrowRight prevented=false",  # with Ctrl
        *["ArrowRight prevented=false"] * 4,  # text, number, textarea, select
        "used r",
        "ArrowRight prevented=true",
    ]
