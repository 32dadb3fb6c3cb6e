"""The web page, in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium): its JavaScript model against the exported SavedModel's `step` and against
`unfold-rnn sample --greedy`, and the page as a user meets it, opened from file:// and from a
static server. Without a browser, these tests skip and say why."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_exporting import VOCAB, adder_run, language_model_run

import unfold_rnn
from unfold_rnn import cli, runs
from unfold_rnn.config import LanguageModelConfig
from unfold_rnn.inspect_run import inspect_run

STEPS = 200
CELLS = ["vanilla", "gru", "gru_reset_before", "lstm", "mingru", "minlstm"]
PRIME = "XY: ab"


def _browser_parts() -> tuple[str, str] | str:
    """Chromium and its driver, or why there are none."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        return "no browser: apt-get install chromium chromium-driver (Debian's), as .ci/run does"
    return chromium, driver


@pytest.fixture(scope="module")
def browser():
    parts = _browser_parts()
    if isinstance(parts, str):
        pytest.skip(parts)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = parts[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1200,900")
    driver = webdriver.Chrome(service=Service(parts[1]), options=options)
    yield driver
    driver.quit()


def _open(browser, site: Path) -> None:
    browser.get_log("browser")  # what earlier pages logged
    browser.get((site / "index.html").as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def _until(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _run(run_dir: Path, cell: str) -> keras.Model:
    """A run of a 2-layer language model with random weights and logits of order 1; the
    GRU with reset_after=False built as build_language_model would."""
    if cell != "gru_reset_before":
        return language_model_run(run_dir, cell)
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32", name="ids")
    h = keras.layers.Embedding(len(VOCAB), 8, name="embedding")(ids)
    for i in range(2):
        h = unfold_rnn.GRU(16, return_sequences=True, reset_after=False, name=f"rnn_{i}")(h)
    logits = keras.layers.Dense(len(VOCAB), name="logits")(h)
    model = keras.Model(ids, logits)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.2, size=w.shape) for w in model.get_weights()])
    model.get_layer("logits").kernel.assign(rng.normal(size=(16, len(VOCAB))))
    runs.create(run_dir, LanguageModelConfig(cell="gru"), VOCAB)
    runs.save_model(model, run_dir / runs.MODEL)
    return model


STEP_IN_PAGE = """
const model = UnfoldRNN.load(globalThis.UNFOLD_RNN_DATA);
let states = model.initialStates();
return arguments[0].map((id) => {
  const next = model.step(id, states);
  states = next.states;
  return [Array.from(next.logits), Array.from(model.flatStates(states))];
});
"""

GENERATE_IN_PAGE = """
const model = UnfoldRNN.load(globalThis.UNFOLD_RNN_DATA);
let text = "";
for (const c of model.generate(arguments[0], arguments[1])) if (!c.prime) text += c.char;
return text;
"""


def _js_steps(browser, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    stepped = browser.execute_script(STEP_IN_PAGE, ids)
    return np.array([s[0] for s in stepped]), np.array([s[1] for s in stepped])


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
def test_the_page_steps_as_the_saved_model_and_samples_as_the_command(
    cell, browser, tmp_path, capsys
):
    _run(tmp_path / "run", cell)
    unfold_rnn.export(tmp_path / "run", tmp_path / "out")
    unfold_rnn.export_web(tmp_path / "run", tmp_path / "site")
    _open(browser, tmp_path / "site")

    ids = np.random.default_rng(1).integers(0, len(VOCAB), STEPS).astype(np.int32)
    js_logits, js_states = _js_steps(browser, ids.tolist())
    step = tf.saved_model.load(str(tmp_path / "out" / "1")).signatures["step"]
    states = tf.zeros((1, js_states.shape[1]))
    for t in range(STEPS):
        served = step(ids=tf.constant(ids[t : t + 1]), states=states)
        states = served["states"]
        np.testing.assert_allclose(js_logits[t], served["logits"][0], atol=1e-4, rtol=0)
        np.testing.assert_allclose(js_states[t], states[0], atol=1e-4, rtol=0)
    assert np.abs(js_logits).max() > 1  # logits of order 1, so 1e-4 means something

    command = ["sample", str(tmp_path / "run"), "--prime", PRIME, "--length", str(STEPS)]
    assert cli.main([*command, "--greedy"]) == 0
    sampled = capsys.readouterr().out[len(PRIME) : -1]
    written = browser.execute_script(GENERATE_IN_PAGE, PRIME, {"length": STEPS, "greedy": True})
    if written != sampled:  # allowed only where the two most likely are within rounding
        first = next(t for t, (a, b) in enumerate(zip(written, sampled, strict=True)) if a != b)
        logits, _ = _js_steps(browser, VOCAB.encode(PRIME + written[:first]).tolist())
        top_two = np.sort(logits[-1])[-2:]
        assert top_two[1] - top_two[0] < 1e-4, (first, written, sampled)


def test_the_page_steps_as_the_keras_model(browser, tmp_path):
    """The inner loop's check: an LSTM's page against the Keras model's own logits."""
    model = _run(tmp_path / "run", "lstm")
    unfold_rnn.export_web(tmp_path / "run", tmp_path / "site")
    _open(browser, tmp_path / "site")
    ids = np.random.default_rng(2).integers(0, len(VOCAB), 50)
    js_logits, _ = _js_steps(browser, ids.tolist())
    np.testing.assert_allclose(js_logits, model(ids[None]).numpy()[0], atol=1e-4, rtol=0)


def test_float16_halves_the_weights_and_keeps_the_logits_close(browser, tmp_path):
    model = _run(tmp_path / "run", "gru")
    full = unfold_rnn.export_web(tmp_path / "run", tmp_path / "full")
    half = unfold_rnn.export_web(tmp_path / "run", tmp_path / "half", dtype="float16")
    assert 0.45 < half.weights_bytes / full.weights_bytes < 0.6
    _open(browser, tmp_path / "half")
    ids = np.random.default_rng(3).integers(0, len(VOCAB), 50)
    js_logits, _ = _js_steps(browser, ids.tolist())
    expected = model(ids[None]).numpy()[0]
    np.testing.assert_allclose(js_logits, expected, atol=2e-2, rtol=0)
    assert np.abs(js_logits - expected).max() > 1e-6  # it did read float16 weights


def _text_spans(browser) -> list:
    return browser.find_elements("css selector", "#text span")


@pytest.mark.slow
def test_a_user_opens_the_page_writes_stops_and_colours(browser, tmp_path):
    _run(tmp_path / "run", "lstm")
    lines = ["  abc de, fgh.", "XY: ab ba", "    cab dag.", "Z: ha"] * 20
    (tmp_path / "text.txt").write_text("\n".join(lines))
    inspect_run(tmp_path / "run", text=tmp_path / "text.txt")  # found units: one-click choices
    unfold_rnn.export_web(tmp_path / "run", tmp_path / "site")
    _open(browser, tmp_path / "site")
    find = functools.partial(browser.find_element, "id")
    find("prime").clear()
    find("prime").send_keys(PRIME)
    find("length").clear()
    find("length").send_keys(find("length").get_attribute("max"))  # more than before Stop
    find("generate").click()
    assert _until(lambda: len(_text_spans(browser)) > len(PRIME), 2.0)
    seen = len(_text_spans(browser))
    assert _until(lambda: len(_text_spans(browser)) > seen + 50, 2.0)  # it keeps coming
    find("stop").click()
    time.sleep(0.1)
    stopped = len(_text_spans(browser))
    time.sleep(0.5)
    assert len(_text_spans(browser)) == stopped
    assert "Stopped after" in find("status").text

    from selenium.webdriver.support.ui import Select

    Select(find("layer")).select_by_visible_text("rnn_1")
    Select(find("state")).select_by_visible_text("c")
    spans = _text_spans(browser)[:400]
    colours = {span.value_of_css_property("background-color") for span in spans}
    assert len(colours) >= 2, colours
    assert spans[-1].get_attribute("title")[0] in "+-"  # hovering shows the value

    found = browser.find_elements("css selector", "#found button")
    assert found, "the inspected units are offered"
    found[0].click()
    unit = json.loads((tmp_path / "run" / "inspect" / "units.json").read_text())
    best = next(units[0] for units in unit["best_units"].values() if units)
    assert find("unit").get_attribute("value") == str(best["index"])
    assert browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_the_page_says_what_is_wrong_with_a_prime(browser, tmp_path):
    _run(tmp_path / "run", "mingru")
    unfold_rnn.export_web(tmp_path / "run", tmp_path / "site")
    _open(browser, tmp_path / "site")
    prime = browser.find_element("id", "prime")
    prime.clear()
    prime.send_keys("ab€")
    browser.find_element("id", "generate").click()
    status = browser.find_element("id", "status")
    assert "does not know" in status.text and "€" in status.text
    assert not _text_spans(browser)


def test_the_page_works_from_a_static_server(browser, tmp_path):
    _run(tmp_path / "run", "minlstm")
    unfold_rnn.export_web(tmp_path / "run", tmp_path / "site")
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site")
    )
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        assert browser.find_element("id", "status").text == "Ready."
        written = browser.execute_script(GENERATE_IN_PAGE, PRIME, {"length": 40, "seed": 5})
        again = browser.execute_script(GENERATE_IN_PAGE, PRIME, {"length": 40, "seed": 5})
        assert len(written) == 40 and written == again and set(written) <= set(VOCAB.chars)
    finally:
        server.shutdown()


ADD_IN_PAGE = """
const model = UnfoldRNN.load(globalThis.UNFOLD_RNN_DATA);
return Array.from(model.add(arguments[0], arguments[1]), (s) => s.probability);
"""


def test_an_adder_page_writes_the_sum_with_its_carry_unit(browser, tmp_path):
    model = adder_run(tmp_path / "run")
    site = unfold_rnn.export_web(tmp_path / "run", tmp_path / "site")
    assert [unit["label"] for unit in site.units] == ["carry"]
    _open(browser, tmp_path / "site")
    a, b = 45, 27
    probabilities = browser.execute_script(ADD_IN_PAGE, a, b)
    width = len(probabilities)
    assert width == 7  # 45 and 27 have 6 bits; the sum may carry into a 7th
    bits = [[(a >> t) & 1, (b >> t) & 1] for t in range(width)]
    expected = model(np.array([bits], np.float32)).numpy()[0, :, 0]
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)

    browser.find_element("id", "add").click()
    status = browser.find_element("id", "status")
    assert _until(lambda: "the network wrote" in status.text, 5.0), status.text
    rows = browser.find_elements("css selector", "#sum tr")
    assert len(rows) == 4
    carry = rows[3].find_elements("css selector", "td")
    assert len(carry) == width
    assert len({td.value_of_css_property("background-color") for td in carry}) >= 2
    written = sum(int(p > 0.5) << t for t, p in enumerate(expected))
    assert f"wrote {written}" in status.text


# -- refusals, which need no browser -----------------------------------------------------------


def test_what_is_not_a_run_is_refused_and_nothing_is_written(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a run directory: it has no config"):
        unfold_rnn.export_web(tmp_path / "empty", tmp_path / "site")
    _run(tmp_path / "run", "gru")
    (tmp_path / "run" / runs.MODEL).write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="not a usable model file"):
        unfold_rnn.export_web(tmp_path / "run", tmp_path / "site")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "run"]


def test_a_site_is_replaced_whole_or_not_at_all(tmp_path):
    _run(tmp_path / "run", "vanilla")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="already holds files"):
        unfold_rnn.export_web(tmp_path / "run", tmp_path / "site")
    # A model the page cannot step fails before anything moves.
    inputs = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(len(VOCAB), 4, name="embedding")(inputs)
    h = unfold_rnn.VanillaRNN(8, activation="elu", return_sequences=True, name="rnn_0")(h)
    odd = keras.Model(inputs, keras.layers.Dense(len(VOCAB), name="logits")(h))
    runs.create(tmp_path / "odd", LanguageModelConfig(cell="vanilla"), VOCAB)
    runs.save_model(odd, tmp_path / "odd" / runs.MODEL)
    with pytest.raises(ValueError, match="rnn_0's activation is elu; the web page knows tanh"):
        unfold_rnn.export_web(tmp_path / "odd", tmp_path / "site", overwrite=True)
    assert [p.name for p in (tmp_path / "site").iterdir()] == ["mine.txt"]

    with pytest.raises(ValueError, match="holds the run itself"):
        unfold_rnn.export_web(tmp_path / "run", tmp_path, overwrite=True)
    unfold_rnn.export_web(tmp_path / "run", tmp_path / "site", overwrite=True)
    (tmp_path / "made_by_mkdir").mkdir()  # a web server reads the folder as it would this one
    mode = (tmp_path / "made_by_mkdir").stat().st_mode
    assert (tmp_path / "site").stat().st_mode == mode
    names = sorted(p.name for p in (tmp_path / "site").iterdir())
    assert names == ["index.html", "page.css", "page.js", "unfold_rnn.js", "weights.js"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_stale_units_and_float16_overflow_are_refused(tmp_path):
    model = _run(tmp_path / "run", "lstm")
    (tmp_path / "run" / "inspect").mkdir()
    stale = {"best_units": {"in_quotes": [{"layer": 5, "state": "h", "index": 0, "r": 0.9}]}}
    (tmp_path / "run" / "inspect" / "units.json").write_text(json.dumps(stale))
    with pytest.raises(ValueError, match="does not describe this model: run `unfold-rnn inspect`"):
        unfold_rnn.export_web(tmp_path / "run", tmp_path / "site")
    (tmp_path / "run" / "inspect" / "units.json").unlink()
    model.get_layer("logits").bias.assign(np.full(len(VOCAB), 1e6, np.float32))
    runs.save_model(model, tmp_path / "run" / runs.MODEL)
    with pytest.raises(ValueError, match="logits's bias has values float16 cannot hold"):
        unfold_rnn.export_web(tmp_path / "run", tmp_path / "site", dtype="float16")
    assert not (tmp_path / "site").exists()


def test_the_command_writes_the_page_or_says_what_is_missing(tmp_path, capsys):
    _run(tmp_path / "run", "mingru")
    site = tmp_path / "site"
    assert cli.main(["export", str(tmp_path / "run"), "--web", str(site)]) == 0
    out = capsys.readouterr().out
    assert f"Web page: {site / 'index.html'}" in out and (site / "weights.js").is_file()
    assert cli.main(["export", str(tmp_path / "run")]) == 1
    assert "Say where to export: --out DIR" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "run"), "--web", str(site)]) == 1
    assert "already holds files" in capsys.readouterr().err
