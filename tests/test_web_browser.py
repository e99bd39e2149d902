"""The ``discinvert serve`` page end to end, in a real headless browser (Debian's chromium through selenium).

Loads the page from a real uvicorn server, uploads a picture, waits for its reconstruction,
refines it live, moves an edit slider with the keyboard and checks that the edited picture
changes, interpolates to an example, and saves a screenshot. Without chromium, chromium-driver
or selenium the test is skipped, unless ``DISCINVERT_BROWSER_TEST=require`` (set by ``.ci/run``,
which installs them) makes that a failure. ``DISCINVERT_SCREENSHOT=PATH`` keeps the screenshot
there (``docs/images/web.png`` is made so; ``docs/web.md``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from discinvert import zoo
from discinvert.edit import class_directions
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
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1500",
                     "--disable-gpu"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    return webdriver.Chrome(service=Service(DRIVER), options=options)


@pytest.mark.slow
def test_the_page_inverts_an_upload_refines_edits_and_interpolates(tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    G, D, inverter = zoo.load(inverter="real-images")
    before, hooks = snapshot(G, D), hook_counts(D)
    examples, images, labels, names = zoo_examples("dcgan-fashion-mnist", inverter)
    session = WebSession(inverter, description="zoo:dcgan-fashion-mnist; inverter zoo:dcgan-fashion-mnist/real-images",
                         examples=examples, directions=class_directions(inverter, images, labels, names),
                         limits=Limits())
    # An upload unlike G's pictures: RGB and twice the size, so the page says what it did.
    upload = tmp_path / "sneaker.png"
    picture = examples.images[12, 0]
    Image.fromarray(np.repeat(np.kron(picture, np.ones((2, 2), np.uint8))[:, :, None], 3, axis=2)).save(upload)

    running = start(create_app(session))
    browser = _browser()
    try:
        wait = WebDriverWait(browser, 60)
        browser.get(running.url)
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#examples img")) == 24)
        assert "zoo:dcgan-fashion-mnist" in browser.find_element(By.ID, "description").text

        browser.find_element(By.ID, "upload").send_keys(str(upload))
        wait.until(lambda b: "PSNR" in b.find_element(By.ID, "reconstruction-caption").text)
        reconstruction = browser.find_element(By.ID, "reconstruction").get_attribute("src")
        assert reconstruction.startswith("data:image/png;base64,")
        notes = browser.find_element(By.ID, "notes").text
        assert "averaged RGB to grayscale" in notes and "resized 56x56 to 28x28" in notes
        wait.until(lambda b: (b.find_element(By.ID, "edited").get_attribute("src") or "").startswith("data:"))

        browser.find_element(By.ID, "refine-steps").clear()
        browser.find_element(By.ID, "refine-steps").send_keys("30")
        browser.find_element(By.ID, "refine-go").click()
        wait.until(lambda b: b.find_element(By.ID, "refine-status").text.startswith("done, step 30/30"))
        assert browser.find_element(By.ID, "refined").get_attribute("src").startswith("data:image/png")
        wait.until(lambda b: b.find_element(By.ID, "refine-go").is_enabled())

        edited_before = browser.find_element(By.ID, "edited").get_attribute("src")
        slider = browser.find_element(By.CSS_SELECTOR, 'input.direction[data-name="Ankle boot"]')
        slider.click()  # the middle of the track: 0
        for _ in range(15):
            slider.send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda b: b.find_element(By.ID, "edited").get_attribute("src") != edited_before)
        assert float(slider.get_attribute("value")) > 0.5
        wait.until(lambda b: "Ankle boot +" in b.find_element(By.ID, "edited-caption").text)

        browser.find_element(By.ID, "interpolate-go").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#path img")) == 9)
        assert "9 frames in" in browser.find_element(By.ID, "path-caption").text
        assert not browser.find_element(By.ID, "error").is_displayed()

        shot = Path(os.environ.get("DISCINVERT_SCREENSHOT") or tmp_path / "web.png")
        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.save_screenshot(str(shot))
        with Image.open(shot) as saved:
            assert saved.size[0] >= 1000 and saved.format == "PNG"
    finally:
        browser.quit()
        running.stop()
    assert_untouched(before, G, D)
    assert hook_counts(D) == hooks


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
        assert browser.find_element(By.ID, "error").text == "not a PNG or JPEG image: expected a PNG or JPEG file."
    finally:
        browser.quit()
        running.stop()
