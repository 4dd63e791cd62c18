"""The review workbench in a real browser (Debian chromium + chromedriver through Selenium) on a home
built from the sample: a case split by marking a link "not the same matter" and running dedupe
again; a topic corrected in the review queue with one key. Screenshots in the test's directory."""
import shutil
import threading

import pytest

from pipeline import dedupe
from pipeline.decisions import DecisionStore
from pipeline.review.app import create_app
from pipeline.rundir import RunDir
from tests.review_home import build_home

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(not (CHROMEDRIVER and CHROMIUM),
                                reason="Debian chromium and chromium-driver not installed (make browser installs them)")


@pytest.fixture(scope="module")
def served(tmp_path_factory, config):
    """The workbench over a fresh home, served by werkzeug on a free local port in a thread."""
    from werkzeug.serving import make_server
    root = tmp_path_factory.mktemp("review-browser")
    home, _ = build_home(root, config)
    server = make_server("127.0.0.1", 0, create_app(home, config, secret_key="browser-test"), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield home, f"http://127.0.0.1:{server.server_port}", root
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_mark_a_link_not_the_same_matter_and_see_the_case_split(served, browser, config):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    home, url, root = served
    browser.get(f"{url}/cases?min_letters=3")
    browser.save_screenshot(str(root / "cases.png"))
    browser.find_elements(By.CSS_SELECTOR, "table tr td a")[0].click()
    WebDriverWait(browser, 30).until(lambda page: "/cases/" in page.current_url)
    case_id = browser.current_url.rsplit("/", 1)[1]
    letters_before = {e.get_attribute("data-letter") for e in browser.find_elements(By.CSS_SELECTOR, "article.letter")}
    assert len(letters_before) >= 3
    browser.save_screenshot(str(root / "case_before.png"))
    # the link to split on: one touching the case's newest letter, between two of its letters
    button = None
    for row in browser.find_elements(By.CSS_SELECTOR, "table.links tr"):
        buttons = row.find_elements(By.CSS_SELECTOR, "button.not-same")
        ids = [a.text for a in row.find_elements(By.CSS_SELECTOR, "td a")]
        if buttons and set(ids) <= letters_before:
            button, pair = buttons[0], ids
            break
    assert button is not None, "a link inside the case"
    button.click()
    # the form's POST and redirect finish after click() returns on a busy machine
    WebDriverWait(browser, 30).until(lambda page: "已标记非同一事项" in page.page_source)
    assert tuple(sorted(pair)) in DecisionStore.for_home(home).effective().cannot_link
    run = sorted(p.parent for p in home.glob("*/deduped.parquet"))[-1]
    dedupe.run_stage(RunDir(run), config, index=home / "index", progress=False)
    browser.get(f"{url}/letters/{pair[1]}")
    browser.save_screenshot(str(root / "letter_after.png"))
    browser.get(f"{url}/cases/{case_id}")
    browser.save_screenshot(str(root / "case_after.png"))
    letters_after = {e.get_attribute("data-letter") for e in browser.find_elements(By.CSS_SELECTOR, "article.letter")}
    assert letters_after < letters_before and not set(pair) <= letters_after


def test_correct_a_topic_in_the_review_queue_with_one_key(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    home, url, root = served
    browser.get(f"{url}/queue")
    items = browser.find_elements(By.CSS_SELECTOR, "article.queue-item")
    if not items:
        pytest.skip("no letter needs review without the board's messages in ../shared")
    letter_id = items[0].get_attribute("data-letter")
    second_choice = items[0].find_element(By.CSS_SELECTOR, 'button[data-key="2"]')
    code = second_choice.find_element(By.XPATH, "..").find_element(By.NAME, "topic").get_attribute("value")
    browser.save_screenshot(str(root / "queue_before.png"))
    browser.find_element(By.TAG_NAME, "body").send_keys("2")
    # the queue again, after the POST and its redirect
    WebDriverWait(browser, 30).until(lambda page: f'data-letter="{letter_id}"' not in page.page_source)
    assert DecisionStore.for_home(home).effective().topics.get(letter_id) == [code]
    browser.get(f"{url}/letters/{letter_id}")
    browser.save_screenshot(str(root / "letter_corrected.png"))
    assert browser.find_element(By.CSS_SELECTOR, ".corrected").text
    print(f"screenshots in {root}")
