"""The home page lists every lesson in the notes' order; each opens a working page, and "next"
walks a newcomer through all eleven."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from app.lessons.registry import BY_SLUG, LESSONS

PATHS = [lesson.path for lesson in LESSONS]

# The notes' order, written out here so the test checks it rather than copying it.
NOTES_ORDER = [
    "tensors",
    "autograd",
    "training-pipeline",
    "datasets",
    "transforms",
    "softmax-cross-entropy",
    "activations",
    "cnn",
    "transfer-learning",
    "tracking",
    "saving-loading",
]


def test_home_lists_all_eleven_lessons_in_the_notes_order(page: Page) -> None:
    page.goto("/")
    paths = [f"/lessons/{slug}" for slug in NOTES_ORDER]
    titles = [BY_SLUG[slug].title for slug in NOTES_ORDER]

    nav = page.locator("#lesson-nav li a")
    cards = page.locator(".cards li a")
    expect(nav).to_have_count(11)
    expect(cards).to_have_count(11)
    assert [nav.nth(i).get_attribute("href") for i in range(11)] == paths
    assert [cards.nth(i).get_attribute("href") for i in range(11)] == paths
    assert page.locator(".cards li h2").all_inner_texts() == titles
    numbers = page.locator(".cards li .num").all_inner_texts()
    assert numbers == [str(i) for i in range(1, 12)]
    for i, title in enumerate(titles):
        expect(nav.nth(i)).to_contain_text(title)


def test_every_lesson_card_opens_its_page_with_every_figure_drawn(page: Page, plots) -> None:
    page.goto("/")
    cards = page.locator(".cards li a")
    hrefs = [cards.nth(i).get_attribute("href") for i in range(cards.count())]
    assert hrefs == PATHS
    for card in page.locator(".cards li .badge").all_inner_texts():
        assert "Open the lesson" in card

    for i, href in enumerate(hrefs):
        page.goto("/")
        with page.expect_navigation() as navigation:
            cards.nth(i).click()
        assert navigation.value is not None and navigation.value.status == 200
        assert page.url.endswith(href)
        expect(page.locator("h1")).to_have_text(BY_SLUG[href.rsplit("/", 1)[1]].title)
        plots.wait_drawn(page)
        assert page.locator(".plot-wrap").count() >= 1
        # The menu marks the lesson being read.
        expect(page.locator('#lesson-nav a[aria-current="page"]')).to_have_attribute("href", href)


def test_a_newcomer_goes_from_the_home_page_through_every_lesson(page: Page, plots) -> None:
    """The issue's bar: all eleven lessons have pages, and "next" leads from one to the next."""
    assert len(PATHS) == 11
    page.goto("/")
    page.locator(".cards li a").first.click()
    seen = []
    while True:
        page.wait_for_load_state()
        slug = page.url.split("/lessons/", 1)[1].split("?", 1)[0]
        seen.append(slug)
        expect(page.locator("h1")).to_have_text(BY_SLUG[slug].title)
        plots.wait_drawn(page)
        assert page.locator(".plot-wrap").count() >= 1, slug
        assert page.locator(".code-block, [data-slot=snippet]").count() >= 1, slug
        following = page.locator('.pager a[rel="next"]')
        if not following.count():
            break
        following.click()
    assert seen == NOTES_ORDER
