"""The playground page in a real browser (Debian's chromium, driven by selenium) against a real
stack: encoder (tiny models) + index + gateway with its HTTP port and the catalog photos."""

from __future__ import annotations

import json
import urllib.request

import pytest

from gateway.client import SearchClient
from tests.support.stack import tiny_stack
from tests.support.tiny_caption import publish_caption
from tests.support.tiny_models import publish_image, publish_text
from tests.support.tools import artifacts_dir, chromium
from vitrine.catalog import Catalog
from vitrine.cli.shop import ingest_catalog

N_PRODUCTS = 16
WAIT_S = 30

pytestmark = pytest.mark.skipif(
    chromium() is None, reason="chromium and chromium-driver not installed (make browser)"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_catalog):
    tmp = tmp_path_factory.mktemp("playground")
    repo = tmp / "models"
    publish_text(repo, "tiny-text", dim=16)
    publish_image(repo, "tiny-image", dim=16)
    publish_caption(repo, demo_catalog.products)
    products = demo_catalog.products[:N_PRODUCTS]
    media = demo_catalog.root / "images"
    with tiny_stack(tmp, repo, http_port=0, num_shards=2, media_dir=str(media)) as (_, _, gw):
        with SearchClient(gw.target) as client:
            resp = ingest_catalog(client, Catalog(demo_catalog.root, products), quiet=True)
            assert resp.succeeded == N_PRODUCTS, resp
        yield {"base": f"http://127.0.0.1:{gw.server.http_port}", "products": products}


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    opts.add_argument("--window-size=1280,1000")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver: selenium-manager would otherwise try to download one.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def api(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def wait_results(driver) -> list[str]:
    """Wait for the grid of the search just started; its product ids, in order."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    results = driver.find_element(By.ID, "results")
    WebDriverWait(driver, WAIT_S).until(
        lambda d: results.get_attribute("data-state") in ("done", "error")
    )
    assert results.get_attribute("data-state") == "done", driver.find_element(By.ID, "status").text
    return [e.get_attribute("data-id") for e in results.find_elements(By.CSS_SELECTOR, ".result")]


def start_search(driver) -> None:
    from selenium.webdriver.common.by import By

    driver.execute_script("document.getElementById('results').dataset.state = 'loading'")
    driver.find_element(By.ID, "search-btn").click()


def images_loaded(driver) -> bool:
    """Every result photo has loaded (scrolled into view first: they load lazily)."""
    return driver.execute_script(
        "const imgs = [...document.querySelectorAll('#results .result-img')];"
        "imgs.forEach(i => { if (!i.complete) i.scrollIntoView(); });"
        "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"
    )


def test_playground_text_photo_filters_describe(stack, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, products = stack["base"], stack["products"]
    browser.get(base + "/")
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.execute_script("return document.body.dataset.state") == "ready"
    )
    # filters from the collection's attribute values (gender is one of the catalog's)
    legends = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "fieldset legend")]
    assert any("gender" in t for t in legends), legends

    # 1. a text search renders a grid of product photos whose ids are the API's answer
    query = "casual shirt"
    q = browser.find_element(By.ID, "q")
    q.clear()
    q.send_keys(query)
    start_search(browser)
    ids = wait_results(browser)
    k = int(browser.find_element(By.ID, "k").get_attribute("value"))
    want = api(base, "/v1/search", {"text": query, "k": k, "include_attributes": True})
    assert ids == [r["product_id"] for r in want["results"]] and ids
    WebDriverWait(browser, WAIT_S).until(images_loaded)
    srcs = [e.get_attribute("src") for e in browser.find_elements(By.CSS_SELECTOR, ".result-img")]
    assert srcs[0] == f"{base}/media/{ids[0]}.jpg"
    assert "ms" in browser.find_element(By.ID, "timings").text
    assert browser.find_element(By.ID, "summary").text

    # 2. a filter from the sidebar narrows the same search to what the API answers for it
    browser.execute_script("window.scrollTo(0, 0)")
    box = browser.find_element(By.CSS_SELECTOR, "fieldset input[type=checkbox]")
    legend = box.find_element(By.XPATH, "ancestor::fieldset").find_element(By.TAG_NAME, "legend")
    label = browser.find_element(By.CSS_SELECTOR, f"label[for='{box.get_attribute('id')}']")
    field, value = legend.text.split()[0], label.text.rsplit(" (", 1)[0]
    browser.execute_script("document.getElementById('results').dataset.state = 'loading'")
    box.click()
    filtered = wait_results(browser)
    flt = {"is_in": {"field": field, "values": [{"string_value": value}]}}
    want = api(base, "/v1/search", {"text": query, "k": k, "filter": flt})
    assert filtered == [r["product_id"] for r in want["results"]], (field, value)
    assert filtered and len(filtered) < len(ids)
    assert all(next(p for p in products if p.id == i).attributes[field] == value for i in filtered)
    browser.execute_script("document.getElementById('results').dataset.state = 'loading'")
    box.click()  # off again
    assert wait_results(browser) == ids

    # 3. a photo upload returns that product first
    probe = products[5]
    q.clear()
    browser.find_element(By.ID, "photo").send_keys(str(probe.image_path))
    start_search(browser)
    ids = wait_results(browser)
    assert ids[0] == probe.id, ids
    WebDriverWait(browser, WAIT_S).until(images_loaded)

    # 4. the describe panel suggests a title for a photo
    browser.find_element(By.ID, "describe-photo").send_keys(str(products[2].image_path))
    browser.find_element(By.ID, "describe-btn").click()
    title = browser.find_element(By.ID, "describe-title")
    WebDriverWait(browser, WAIT_S).until(lambda d: title.text.strip())

    shot = artifacts_dir() / "playground.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print("screenshot:", shot)
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_playground_keyboard_only_search(stack, browser):
    """The search runs from the keyboard alone: focus the box, type, Enter."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(stack["base"] + "/?q=black+watch")
    ids = wait_results(browser)  # a query in the URL runs on load
    assert ids
    q = browser.find_element(By.ID, "q")
    assert q.get_attribute("value") == "black watch"
    labels = browser.execute_script(
        "return [...document.querySelectorAll('input, select, button')]"
        ".filter(e => e.type !== 'hidden' && !e.labels?.length && !e.getAttribute('aria-label')"
        " && !e.textContent.trim()).map(e => e.id || e.outerHTML.slice(0, 80));"
    )
    assert not labels, f"controls without a label: {labels}"
    # what the loaded models cannot do is greyed out (no reranker or composer here)
    disabled = browser.execute_script(
        "return [...document.querySelectorAll('option:disabled')].map(o => o.value);"
    )
    assert sorted(disabled) == ["model", "on"]
    assert browser.find_element(By.ID, "describe").is_displayed()  # a caption model is
    q.clear()
    browser.execute_script("document.getElementById('results').dataset.state = 'loading'")
    q.send_keys("red shoes", Keys.ENTER)
    ids = wait_results(browser)
    want = api(stack["base"], "/v1/search", {"text": "red shoes", "k": len(ids) or 1})
    assert ids == [r["product_id"] for r in want["results"]]
