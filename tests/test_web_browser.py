"""The ``discinvert serve`` page end to end, in a real headless browser (Debian's chromium through selenium).

Loads the page from a real uvicorn server with every host name but this machine's unresolvable
(no network: everything the page loads must come from this machine), uploads a picture, waits for
its reconstruction, refines it live, moves an edit slider with the keyboard and checks that the
edited picture changes and that the typical-set warning is shown exactly when the API gives one, learns
a slider from uploaded labelled pictures and edits with it, interpolates to an example and scrubs the path, and saves screenshots at
1280 and 420 pixels wide. A second test drives the paths where a page could keep stale state: a
refused upload, a refused example index, a new picture during a refinement, Stop, and a new
picture after an interpolation. Without chromium, chromium-driver or selenium the tests are
skipped, unless ``DISCINVERT_BROWSER_TEST=require`` (set by ``.ci/run``, which installs them) makes
that a failure. ``DISCINVERT_SCREENSHOT=PATH`` keeps the 1280-pixel screenshot there
(``docs/images/web.png`` is made so; ``docs/web.md``); both are always written to the test's
``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from discinvert import zoo
from discinvert.directions import learn_directions
from discinvert.web import Limits, WebSession, create_app, start
from discinvert.web.sources import zoo_examples
from tests.conftest import assert_untouched, hook_counts, snapshot

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
REQUIRED = os.environ.get("DISCINVERT_BROWSER_TEST") == "require"


def _browser():
    missing = [name for name, found in (("chromium", CHROMIUM), ("chromedriver", DRIVER)) if not found]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium")
    if missing:
        message = f"the browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if REQUIRED:
            pytest.fail(message + "; DISCINVERT_BROWSER_TEST=require")
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    # No network: every host name but this machine's fails to resolve, as on a machine offline.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1500",
                     "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def _zoo_session(**limits: int) -> tuple[WebSession, np.ndarray, object, object]:
    G, D, inverter = zoo.load(inverter="real-images")
    examples, images, labels, names = zoo_examples("dcgan-fashion-mnist", inverter)
    session = WebSession(inverter, description="zoo:dcgan-fashion-mnist; inverter zoo:dcgan-fashion-mnist/real-images",
                         examples=examples, directions=learn_directions(inverter, images, labels, names=names, seed=0),
                         limits=Limits(**limits))
    return session, examples.images, G, D


def _screenshot(browser, width: int, path: Path) -> None:
    """The whole page at ``width`` CSS pixels wide, as a PNG at ``path``."""
    browser.set_window_size(width, 1000)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, height + 150)  # the window's frame: the page fits without scrolling
    browser.execute_script("window.scrollTo(0, 0); document.activeElement.blur()")
    assert browser.save_screenshot(str(path))
    with Image.open(path) as saved:
        assert saved.format == "PNG" and saved.size[0] >= width


def _examples_fill_whole_rows(browser) -> tuple[int, int]:
    """(thumbnails, columns) of the example strip; every row full."""
    shown = len(browser.find_elements("css selector", "#examples img"))
    columns = browser.execute_script(
        "return getComputedStyle(document.getElementById('examples')).gridTemplateColumns.split(' ').length")
    tops = browser.execute_script(
        "return [...document.querySelectorAll('#examples img')].map(i => Math.round(i.getBoundingClientRect().top))")
    rows = sorted(set(tops))
    assert shown and shown % columns == 0 and len(rows) == shown // columns <= 2, (shown, columns, rows)
    assert all(tops.count(top) == columns for top in rows), "a row that is not full"
    return shown, columns


@pytest.mark.slow
def test_the_page_inverts_an_upload_refines_edits_and_interpolates(tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    session, pictures, G, D = _zoo_session()
    before, hooks = snapshot(G, D), hook_counts(D)
    # An upload unlike G's pictures: RGB and twice the size, so the page says what it did.
    upload = tmp_path / "sneaker.png"
    Image.fromarray(np.repeat(np.kron(pictures[12, 0], np.ones((2, 2), np.uint8))[:, :, None], 3, axis=2)).save(upload)

    running = start(create_app(session))
    browser = _browser()
    try:
        wait = WebDriverWait(browser, 60)
        browser.get(running.url)
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#examples img")) > 0)
        assert "zoo:dcgan-fashion-mnist" in browser.find_element(By.ID, "description").text
        shown, columns = _examples_fill_whole_rows(browser)
        assert browser.find_element(By.ID, "examples-count").text == \
            f"The first {shown} of 1,000 example pictures: type an index from 0 to 999, or press Random."
        # Nothing to download yet: the picture's button is disabled, and looks like its disabled neighbour.
        image_button, code_button = (browser.find_element(By.ID, i) for i in ("download-image", "download-code"))
        assert image_button.tag_name == "button" and not image_button.is_enabled() and not code_button.is_enabled()
        style = "const s = getComputedStyle(arguments[0]); return [s.color, s.backgroundColor, s.fontSize, s.borderColor];"
        assert browser.execute_script(style, image_button) == browser.execute_script(style, code_button)
        # No empty path slider before there is a path.
        assert not browser.find_element(By.ID, "path-slider").is_displayed()

        browser.find_element(By.ID, "upload").send_keys(str(upload))
        wait.until(lambda b: "PSNR" in b.find_element(By.ID, "reconstruction-caption").text)
        reconstruction = browser.find_element(By.ID, "reconstruction").get_attribute("src")
        assert reconstruction.startswith("data:image/png;base64,")
        notes = browser.find_element(By.ID, "notes").text
        assert "averaged RGB to grayscale" in notes and "resized 56x56 to 28x28" in notes
        wait.until(lambda b: (b.find_element(By.ID, "edited").get_attribute("src") or "").startswith("data:"))
        wait.until(lambda b: b.find_element(By.ID, "download-image").is_enabled())

        browser.find_element(By.ID, "refine-steps").clear()
        browser.find_element(By.ID, "refine-steps").send_keys("30")
        browser.find_element(By.ID, "refine-go").click()
        wait.until(lambda b: b.find_element(By.ID, "refine-status").text.startswith("done, step 30/30"))
        assert browser.find_element(By.ID, "refined").get_attribute("src").startswith("data:image/png")
        wait.until(lambda b: b.find_element(By.ID, "refine-go").is_enabled())
        assert not browser.find_element(By.ID, "refine-stop").is_enabled()

        edited_before = browser.find_element(By.ID, "edited").get_attribute("src")
        slider = browser.find_element(By.CSS_SELECTOR, 'input.direction[data-name="Ankle boot"]')
        slider.click()  # the middle of the track: 0
        for _ in range(15):
            slider.send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda b: b.find_element(By.ID, "edited").get_attribute("src") != edited_before)
        assert float(slider.get_attribute("value")) > 0.5
        wait.until(lambda b: "Ankle boot +" in b.find_element(By.ID, "edited-caption").text)

        # The typical-set warning: shown exactly when the API gives one for the page's code and amounts.
        def warning_shown() -> str | None:
            box = browser.find_element(By.ID, "edit-warning")
            return box.text if box.is_displayed() else None

        code = browser.execute_script("return state.refinedCode || state.code")
        amount = float(slider.get_attribute("value"))
        expected = session.edit(session.code(code), {"Ankle boot": amount})["warning"]
        wait.until(lambda b: warning_shown() == expected)
        browser.find_element(By.ID, "edit-reset").click()
        wait.until(lambda b: "no edit" in b.find_element(By.ID, "edited-caption").text and warning_shown() is None)
        # Two sliders at their far end: the code leaves the typical set through its outer edge, which must warn.
        ends = {}
        for name in ("Bag", "Ankle boot"):
            far = browser.find_element(By.CSS_SELECTOR, f'input.direction[data-name="{name}"]')
            far.send_keys(Keys.END)
            ends[name] = float(far.get_attribute("value"))
        expected = session.edit(session.code(code), ends)["warning"]
        assert expected is not None and "left the prior's typical set" in expected, (ends, expected)
        wait.until(lambda b: warning_shown() == expected)
        browser.find_element(By.ID, "edit-reset").click()
        wait.until(lambda b: "no edit" in b.find_element(By.ID, "edited-caption").text and warning_shown() is None)
        browser.find_element(By.CSS_SELECTOR, 'input.direction[data-name="Bag"]').send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda b: "Bag +" in b.find_element(By.ID, "edited-caption").text)

        # Learn a slider from 10 uploaded pictures with a label and 10 without: it appears, usable, beside the others.
        labels = np.array(session.examples.labels)
        with_label = [i for i in np.flatnonzero(labels == "Trouser")[:10]]
        without = [i for i in np.flatnonzero(labels != "Trouser")[:10]]
        for side, rows in (("with", with_label), ("without", without)):
            paths = []
            for i in rows:
                paths.append(tmp_path / f"{side}-{i}.png")
                Image.fromarray(pictures[i, 0]).save(paths[-1])
            browser.find_element(By.ID, f"learn-{side}").send_keys("\n".join(map(str, paths)))
        browser.find_element(By.ID, "learn").click()  # open the <details>
        browser.find_element(By.ID, "learn-name").send_keys("long legs")
        browser.find_element(By.ID, "learn-go").click()
        wait.until(lambda b: b.find_element(By.ID, "learn-status").text.startswith(
            'learned "long legs" from 10 pictures with it and 10 without: held-out balanced accuracy'))
        learned = browser.find_element(By.CSS_SELECTOR, 'input.direction[data-name="long legs"]')
        assert learned.is_enabled() and learned.get_attribute("data-method") == "labels"
        kept = browser.find_element(By.CSS_SELECTOR, 'input.direction[data-name="Bag"]')
        assert abs(float(kept.get_attribute("value"))) == pytest.approx(0.1)  # a rebuild keeps the amounts set
        headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#sliders .group")]
        assert len(headings) == 2 and headings[1].startswith("labels:") and "learned on this page" in headings[1]
        before_learned = browser.find_element(By.ID, "edited").get_attribute("src")
        learned.send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda b: "long legs +0.1" in b.find_element(By.ID, "edited-caption").text)
        assert browser.find_element(By.ID, "edited").get_attribute("src") != before_learned
        browser.find_element(By.ID, "edit-reset").click()
        wait.until(lambda b: "no edit" in b.find_element(By.ID, "edited-caption").text)
        slider = browser.find_element(By.CSS_SELECTOR, 'input.direction[data-name="Ankle boot"]')  # rebuilt
        for _ in range(15):  # the edit the screenshot shows
            slider.send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda b: "Ankle boot +1.5" in b.find_element(By.ID, "edited-caption").text)

        browser.find_element(By.ID, "interpolate-go").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#path img")) == 9)
        caption = browser.find_element(By.ID, "path-caption")
        assert caption.text.startswith("frame 0 of 8 · 9 frames in")
        path_slider = browser.find_element(By.ID, "path-slider")
        path_slider.send_keys(Keys.ARROW_RIGHT)
        path_slider.send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda b: b.find_element(By.ID, "path-caption").text.startswith("frame 2 of 8 · 9 frames in"))
        # Two interpolations on their way at once (5 frames, then 7): only the latest one's frames are shown.
        answered = ("return ['reconstruct', 'interpolate'].map("
                    "  name => performance.getEntriesByName(arguments[0] + 'api/' + name).length)")
        reconstructed, interpolated = browser.execute_script(answered, running.url)
        browser.execute_script("const frames = document.getElementById('frames'), go = arguments[0];"
                               "frames.value = '5'; go.click(); frames.value = '7'; go.click();",
                               browser.find_element(By.ID, "interpolate-go"))
        wait.until(lambda b: b.find_element(By.ID, "path-box").is_displayed() and (
            (now := b.execute_script(answered, running.url))[0] == reconstructed + 2 and now[1] > interpolated))
        time.sleep(0.5)  # long enough for an earlier click's path, if one were still asked for, to come in
        assert len(browser.find_elements(By.CSS_SELECTOR, "#path img")) == 7
        assert browser.find_element(By.ID, "path-caption").text.startswith("frame 0 of 6 · 7 frames in")
        assert not browser.find_element(By.ID, "error").is_displayed()
        # Offline and still whole: everything the page loaded came from this machine.
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and all(name.startswith(running.url) for name in loaded), loaded

        _screenshot(browser, 1280, tmp_path / "web-1280.png")
        if os.environ.get("DISCINVERT_SCREENSHOT"):
            shutil.copyfile(tmp_path / "web-1280.png", os.environ["DISCINVERT_SCREENSHOT"])
        _screenshot(browser, 420, tmp_path / "web-420.png")
        narrow_shown, narrow_columns = _examples_fill_whole_rows(browser)
        assert narrow_columns < columns
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 420, "sideways scrolling"
    finally:
        browser.quit()
        running.stop()
    assert_untouched(before, G, D)
    assert hook_counts(D) == hooks


def _refine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "discinvert-refine" and t.is_alive()]


@pytest.mark.slow
def test_the_page_never_shows_a_previous_picture_s_state(tmp_path) -> None:
    """A refused upload or index, a new picture during a refinement or after an interpolation, Stop:
    every panel then shows only the current picture's state, and a stopped refinement stops on the server."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    session, _, G, D = _zoo_session(max_refine_steps=100_000)
    before = snapshot(G, D)
    not_a_picture = tmp_path / "notes.png"
    not_a_picture.write_text("these are notes, not a picture")
    running = start(create_app(session))
    browser = _browser()
    panels = ("original", "reconstruction", "refined", "edited")
    buttons = ("refine-go", "refine-stop", "edit-reset", "download-code", "download-image", "interpolate-go")

    def src(name: str) -> str:
        return browser.find_element(By.ID, name).get_attribute("src") or ""

    def enabled(name: str) -> bool:
        return browser.find_element(By.ID, name).is_enabled()

    def assert_blank(error: str) -> None:
        assert browser.find_element(By.ID, "error").text == error
        assert [src(p) for p in panels] == ["", "", "", ""]
        assert [enabled(b) for b in buttons] == [False] * len(buttons)
        assert not any(s.is_enabled() for s in browser.find_elements(By.CSS_SELECTOR, "input.direction"))
        assert browser.find_element(By.ID, "notes").text == ""
        assert browser.find_elements(By.CSS_SELECTOR, "#path img") == []
        assert not browser.find_element(By.ID, "path-box").is_displayed()

    def invert_example(index: int) -> None:
        browser.find_element(By.ID, "example-index").clear()
        browser.find_element(By.ID, "example-index").send_keys(str(index))
        browser.find_element(By.ID, "example-go").click()

    def shown_and_edited(index: int) -> None:
        wait.until(lambda b: "PSNR" in b.find_element(By.ID, "reconstruction-caption").text and src("edited"))
        assert src("original") == session_original(index)

    def session_original(index: int) -> str:
        return session.reconstruct(session.example(index))["original"]

    try:
        wait = WebDriverWait(browser, 60)
        browser.get(running.url)
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#examples img")) > 0)

        # A picture with a path, then a refused upload: nothing of the old picture stays, Refine is off.
        invert_example(3)
        shown_and_edited(3)
        browser.find_element(By.ID, "interpolate-go").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#path img")) == 9)
        browser.find_element(By.ID, "upload").send_keys(str(not_a_picture))
        wait.until(lambda b: b.find_element(By.ID, "error").is_displayed())
        assert_blank("expected a PNG or JPEG file, got text beginning 'these are notes, not a p…'.")
        assert browser.find_element(By.ID, "upload").get_attribute("value") == ""
        _screenshot(browser, 1280, tmp_path / "refused-1280.png")

        # A picture, then a refused example index.
        invert_example(5)
        shown_and_edited(5)
        invert_example(-1)
        wait.until(lambda b: b.find_element(By.ID, "error").is_displayed())
        assert_blank("example -1: expected an index from 0 to 999.")

        # A new picture after an interpolation: the path is gone.
        invert_example(5)
        shown_and_edited(5)
        browser.find_element(By.ID, "interpolate-go").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#path img")) == 9)
        browser.find_elements(By.CSS_SELECTOR, "#examples img")[7].click()
        shown_and_edited(7)
        assert browser.find_elements(By.CSS_SELECTOR, "#path img") == []
        assert not browser.find_element(By.ID, "path-box").is_displayed()

        # A new picture during a long refinement: the refinement is cancelled, here and on the server.
        browser.find_element(By.ID, "refine-steps").clear()
        browser.find_element(By.ID, "refine-steps").send_keys("100000")
        browser.find_element(By.ID, "refine-go").click()
        wait.until(lambda b: b.find_element(By.ID, "refine-status").text.startswith("step 0/100000"))
        assert enabled("refine-stop") and not enabled("refine-go") and _refine_threads()
        browser.find_elements(By.CSS_SELECTOR, "#examples img")[8].click()
        shown_and_edited(8)
        wait.until(lambda b: not _refine_threads())
        time.sleep(1.0)  # long enough for a refinement still running to show a step
        assert src("refined") == "" and browser.find_element(By.ID, "refine-status").text == ""
        assert enabled("refine-go") and not enabled("refine-stop")

        # A refinement run to its end, then another one stopped: the edits (and the code they download)
        # use the feed-forward code, as the page says, not the first refinement's code.
        browser.find_element(By.ID, "refine-steps").clear()
        browser.find_element(By.ID, "refine-steps").send_keys("5")
        browser.find_element(By.ID, "refine-go").click()
        wait.until(lambda b: b.find_element(By.ID, "refine-status").text.startswith("done, step 5/5"))
        browser.find_element(By.ID, "refine-steps").clear()
        browser.find_element(By.ID, "refine-steps").send_keys("100000")
        feed_forward = session.reconstruct(session.example(8))["code"]
        unedited = session.edit(session.code(feed_forward), {})["image"]

        # Stop: the refinement ends on the server, the page says where it stopped and animates no more.
        browser.find_element(By.ID, "refine-go").click()
        wait.until(lambda b: b.find_element(By.ID, "refine-status").text.startswith("step 0/100000"))
        browser.find_element(By.ID, "refine-stop").click()
        wait.until(lambda b: b.find_element(By.ID, "refine-status").text.startswith("stopped at step 0/100000"))
        wait.until(lambda b: not _refine_threads())
        stopped = src("refined")
        time.sleep(1.0)
        assert src("refined") == stopped and browser.find_element(By.ID, "refine-status").text.startswith("stopped")
        assert enabled("refine-go") and not enabled("refine-stop")
        assert browser.find_element(By.ID, "refine-status").text.endswith("the edits use the feed-forward code")
        assert src("edited") == unedited
        edited_code = browser.execute_script("return JSON.parse(document.getElementById('edited').dataset.code)")
        assert edited_code == feed_forward
        assert not browser.find_element(By.ID, "error").is_displayed()
        assert src("original") == session_original(8)
    finally:
        browser.quit()
        running.stop()
    assert_untouched(before, G, D)


@pytest.mark.slow
def test_the_page_shows_a_refused_upload_as_a_message(tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    G, D, inverter = zoo.load(inverter="real-images")
    session = WebSession(inverter, description="zoo DCGAN")
    not_a_picture = tmp_path / "notes.png"
    not_a_picture.write_text("these are notes, not a picture")
    running = start(create_app(session))
    browser = _browser()
    try:
        browser.get(running.url)
        WebDriverWait(browser, 60).until(lambda b: "zoo DCGAN" in b.find_element(By.ID, "description").text)
        assert "No example pictures" in browser.find_element(By.ID, "examples").text
        browser.find_element(By.ID, "upload").send_keys(str(not_a_picture))
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "error").is_displayed())
        assert browser.find_element(By.ID, "error").text == \
            "expected a PNG or JPEG file, got text beginning 'these are notes, not a p…'."
    finally:
        browser.quit()
        running.stop()
