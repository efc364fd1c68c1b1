"""The model card of a version trained on small data: written by `training_job`, logged on the
version's MLflow run, holding the values the other assets recorded, written to a file by
`mlops-assets card`, and opened in headless Chromium without a request leaving the page."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from mlops_assets.core.model_card import feature_roles, fmt, md_text
from mlops_assets.core.spec import load_spec
from mlops_assets_tests.pipeline import trained_platform


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("card") / "mlops"
    with trained_platform(home) as (defs, instance, result):
        assert result.success
        tracking = defs.resources["mlflow_tracking"]
        card = result.output_for_node("model_card")
        yield {
            "home": home, "result": result, "tracking": tracking, "card": card,
            "registered": result.output_for_node("registered_model"),
            "markdown": artifact(tracking, card["uri"], "model_card.md"),
            "html": artifact(tracking, card["uri"], "model_card.html"),
        }


def artifact(tracking, uri: str, name: str) -> str:
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/{name}", dst_path=tmp, tracking_uri=tracking.tracking_uri)
        with open(path, encoding="utf-8") as handle:
            return handle.read()


def sections(markdown: str) -> dict[str, str]:
    parts = re.split(r"^## ", markdown, flags=re.M)[1:]
    return {part.split("\n", 1)[0]: part.split("\n", 1)[1] for part in parts}


def output(trained, name: str):
    return trained["result"].output_for_node(name)


def cli(home, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"), "MLOPS_PROFILE": "fast"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "mlops_assets.cli", *args], capture_output=True, text=True, env=env, timeout=120, cwd=home)


def test_the_card_is_logged_on_the_version_and_shown_in_the_ui(trained):
    registered, card = trained["registered"], trained["card"]
    assert card["version"] == registered["version"] and card["run_id"] == registered["run_id"]
    assert trained["tracking"].registry().version_tags(card["version"])["model_card.uri"] == card["uri"]
    event = next(e for e in trained["result"].get_asset_materialization_events() if e.asset_key.to_user_string() == "model_card")
    metadata = event.materialization.metadata
    assert metadata["card"].value == trained["markdown"]
    assert metadata["version"].value == registered["version"]


def test_the_card_holds_the_values_the_assets_recorded(trained):
    found = sections(trained["markdown"])
    registered, fair, candidate = trained["registered"], output(trained, "fair_model"), output(trained, "candidate_model")
    assert f"**Version**: {registered['version']}" in found["Model details"]
    assert f"models:/load_forecaster/{registered['version']}" in found["Model details"]
    roles = feature_roles(load_spec())
    assert ", ".join(roles["known_in_advance"]) in found["Factors: groups and features"]
    assert ", ".join(roles["observed"]) in found["Factors: groups and features"]
    for name, version in fair["data_versions"].items():
        assert f"| {name} | {version} |" in found["Training data"]
    assert set(fair["data_versions"]) == {"train_set", "validation_set", "test_set"}
    metric = candidate["selection_metric"]
    for row in candidate["comparison"]:
        values = [row["model"], row[f"val_{metric}"], *(row[f"test_{m}"] for m in ("mae", "rmse", "mase", "skill")), row["chosen"]]
        assert "| " + " | ".join(md_text(v) for v in values) + " |" in found["Metrics: candidates compared and why this one won"]
    assert f"Chosen: {candidate['kind']}" in found["Metrics: candidates compared and why this one won"]
    evaluation = output(trained, "model_evaluation")
    quantitative = found["Quantitative analyses: overall and per group, with baselines"]
    assert f"| this version | {fmt(evaluation['challenger']['metrics']['mae'])} |" in quantitative
    assert f"| seasonal naive | {fmt(evaluation['baselines']['seasonal_naive']['mae'])} |" in quantitative
    for group in ("A", "B", "C"):
        assert f"| {group} |" in quantitative and f"| {group} |" in found["Ethical considerations: fairness"]
    gate = found["Release gate: blocking checks"]
    assert len(registered["verdicts"]) >= 5
    for v in registered["verdicts"]:
        assert f"| {v['check']} | {'pass' if v['passed'] else 'FAIL'} | {md_text(v['reason'])} |" in gate
    top = output(trained, "shap_summary")["importance"][0]["feature"]
    assert f"| 1 | {top} |" in found["Explanations: SHAP top features"]
    assert "data:image/png;base64," in found["Explanations: SHAP top features"]
    intervals = registered.get("intervals")
    assert (fmt(intervals["coverage"]) if intervals else "no prediction interval recorded") in found["Prediction intervals"]
    assert f"mlflow models serve -m models:/load_forecaster/{registered['version']}" in found["How to reproduce"]
    assert registered["run_id"] in found["Lineage"]


def test_the_cli_writes_the_logged_card(trained):
    home, version = trained["home"], trained["card"]["version"]
    done = cli(home, "card")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"model_card_v{version}.md"
    assert (home / f"model_card_v{version}.md").read_text(encoding="utf-8") == trained["markdown"]
    out = home / "card.html"
    done = cli(home, "card", "--version", version, "--format", "html", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8") == trained["html"]


def test_the_cli_names_a_missing_version_in_one_line(trained):
    done = cli(trained["home"], "card", "--version", "99")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == ["Error: model load_forecaster has no version 99"]


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = os.environ.get("CHROME_BIN") or shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.path.exists(binary) and os.path.exists(driver_path)):
        pytest.skip("chromium and chromedriver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def test_the_html_opens_in_a_headless_browser_without_requests(trained, tmp_path):
    from selenium.webdriver.common.by import By

    page = tmp_path / "card.html"
    page.write_text(trained["html"], encoding="utf-8")
    driver = chromium()
    try:
        driver.get(page.as_uri())
        title, headings = driver.title, [e.text for e in driver.find_elements(By.TAG_NAME, "h2")]
        image_width = driver.execute_script("const i = document.querySelector('img'); return i ? i.naturalWidth : 0;")
        events = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
        console = driver.get_log("browser")
    finally:
        driver.quit()
    requested = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    assert requested and all(url == page.as_uri() or url.startswith("data:") for url in requested), requested
    assert not [entry for entry in console if entry["level"] == "SEVERE"], console
    assert title == f"Model card: load_forecaster version {trained['card']['version']}"
    assert headings == list(sections(trained["markdown"]))
    assert image_width > 0
