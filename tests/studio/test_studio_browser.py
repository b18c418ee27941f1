"""The studio's page in a real browser: Debian's headless Chromium driven by Playwright (never `playwright
install`). Skips, saying why, where the browser or Playwright is missing (`make test` installs Playwright when
/usr/bin/chromium exists; .ci/run installs chromium where it can)."""

import socket
import threading
import time
from pathlib import Path

import pytest
from studio_kit import KEYS, make_studio, tiny_models

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("no browser: install Debian's chromium (apt-get install chromium) to run the studio's browser tests",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -e '.[browser]'")
pytest.importorskip("uvicorn", reason="the studio's extra is not installed: pip install 'mirokit[studio]'")

# Playwright is optional: imported only once the checks above have found it and a browser
from playwright.sync_api import expect, sync_playwright  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    import uvicorn

    from mirokit.studio.server import build_app

    studio = make_studio(tiny_models(tmp_path_factory.mktemp("browser_models")), tmp_path_factory.mktemp("out"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(studio), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "the studio did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url)
    expect(page.locator("#rewards tbody tr")).to_have_count(len(KEYS))
    page.fill("#steps", "3")
    yield page
    context.close()
    assert not errors, errors  # no JavaScript error on the page


def _generate(page) -> None:
    """Click Generate and wait for the new job's results (their card ids name the job)."""
    old = page.evaluate("() => document.querySelector('#results .card')?.id || ''")
    page.click("#generate")
    page.wait_for_function("old => { const c = document.querySelector('#results .card');"
                           " return c && c.id !== old && !document.querySelector('#generate').disabled; }",
                           arg=old, timeout=60_000)


def _image_bytes(page, index: int = 0) -> bytes:
    src = page.locator("#results .card img").nth(index).evaluate("img => img.src")
    return page.request.get(src).body()


def test_one_slider_pair_per_reward_and_a_screenshot(page, tmp_path):
    assert page.locator("#rewards input[type=range]").count() == 2 * len(KEYS)
    for key in KEYS:
        expect(page.locator(f'input[type=range][data-key="{key}"]')).to_have_count(2)
    meaning = page.locator("#rewards .meaning").first.inner_text()
    assert "percentile" in meaning
    _generate(page)
    expect(page.locator("#results .card")).to_have_count(1)
    page.screenshot(path=str(tmp_path / "studio.png"), full_page=True)
    assert (tmp_path / "studio.png").stat().st_size > 10_000


def test_moving_a_slider_changes_the_images(page):
    _generate(page)
    before = _image_bytes(page)
    slider = page.locator('input[type=range][data-key="world_quality"][data-side="pos"]')
    slider.fill("0")  # dispatches input: the shown value follows
    expect(page.locator("#rewards tbody tr").nth(1).locator(".value").first).to_have_text("0.000")
    _generate(page)
    after = _image_bytes(page)
    assert after != before
    card = page.locator("#results .card").first
    assert "asked" in card.inner_text() and "world_quality" in card.inner_text()


def test_the_sweep_strip_renders(page):
    page.select_option("#mode", "sweep")
    page.select_option("#sweep-key", "world_composition")
    page.fill("#points", "4")
    _generate(page)
    expect(page.locator("#results .strip .card")).to_have_count(4)
    expect(page.locator("#summary")).to_contain_text("Spearman")


def test_cancel_stops_a_running_job(page):
    page.fill("#steps", "100")
    page.fill("#num-images", "16")
    page.click("#generate")
    expect(page.locator("#cancel")).to_be_enabled()
    expect(page.locator("#queue-status")).to_contain_text("step", timeout=30_000)
    page.click("#cancel")
    expect(page.locator("#queue-status")).to_have_text("cancelled", timeout=30_000)
    expect(page.locator("#generate")).to_be_enabled()


def test_bad_values_show_an_error_on_the_page(page, tmp_path):
    page.fill("#steps", "0")
    page.click("#generate")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("steps must be")
    preset = tmp_path / "preset.json"
    preset.write_text('{"rewards": {"clip_score": 0.5}, "steps": 20}')
    page.set_input_files("#import-preset", str(preset))
    expect(page.locator("#error")).to_contain_text("clip_score")


def test_dropping_a_studio_png_restores_its_settings(page):
    page.fill("#prompt", "two green stars")
    page.fill("#seed", "7")
    page.locator('input[type=range][data-key="world_composition"][data-side="pos"]').fill("21")
    _generate(page)
    src = page.locator("#results .card img").first.evaluate("img => img.src")
    page.fill("#prompt", "something else")
    page.fill("#seed", "0")
    page.click("#reset-targets")
    # drop the result's PNG on the drop zone, as a user dragging it from the history would
    page.evaluate("""async (src) => {
        const blob = await (await fetch(src)).blob();
        const data = new DataTransfer();
        data.items.add(new File([blob], "result.png", {type: "image/png"}));
        document.querySelector("#drop").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true}));
    }""", src)
    expect(page.locator("#prompt")).to_have_value("two green stars")
    expect(page.locator("#seed")).to_have_value("7")
    row = page.locator("#rewards tbody tr").nth(2)
    expect(row.locator(".value").first).to_have_text(f"{21 / 63:.3f}")
