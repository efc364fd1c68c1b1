"""Screenshots of the Dagster UI for the README and docs/images/ (issue #17).

    .venv/bin/python docs/screenshots.py [--home MLOPS_HOME] [--out docs/images]
    make screenshots

Without --home it first runs `mlops-assets demo` into a fresh temporary MLOPS_HOME (removed
afterwards, kept if anything failed); with --home it uses the runs already recorded there. It then starts the Dagster
webserver and daemon the way `make ui` does (`dagster dev -w workspace.yaml` from the project
root, DAGSTER_HOME=$MLOPS_HOME/dagster_home) on a free loopback port, waits until the code
location has loaded, drives headless Chromium (1600x1000, device scale 1) through Selenium and
writes:

    asset_graph.png              /asset-groups, every group expanded (Alt+E), zoomed to fit
    registered_model_checks.png  /assets/registered_model?view=checks: its blocking checks
    shap_summary.png             /assets/shap_summary: the latest materialization's metadata

The dagster dev process group is stopped on the way out, whatever happened. The script and all
it starts (the demo, dagster dev, Chromium) run at niceness +10: they share the cores.

Needs Chromium and ChromeDriver from Debian (`apt-get install chromium chromium-driver`; found
as /usr/bin/chromium and /usr/bin/chromedriver, or set CHROME_BIN / CHROMEDRIVER) and Selenium
from PyPI (`.venv/bin/pip install selenium`; it is in the `bench` extra). Pillow (installed
with matplotlib) shrinks the PNGs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
WIDTH, HEIGHT = 1600, 1000
MAX_BYTES = 400_000


# --- the demo and the UI ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(home: Path, env: dict) -> None:
    log = home / "demo.log"
    print(f"running `mlops-assets demo` into {home} (log: {log}) ...", flush=True)
    with log.open("wb") as out:
        code = subprocess.call([str(BIN / "mlops-assets"), "demo"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"mlops-assets demo failed ({code}); see {log}")


LOCATIONS = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_for_ui(base: str, server: subprocess.Popen, timeout: float) -> None:
    """Until the webserver answers and every code location has loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"dagster dev exited ({server.returncode}) before the UI came up")
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=5):
                pass
            entries = graphql(base, LOCATIONS)["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                broken = [e for e in entries if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"]
                if broken:
                    sys.exit(f"the code location did not load: {broken}")
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError, ValueError):
            pass
        time.sleep(2)
    sys.exit(f"the UI at {base} did not come up within {timeout:.0f}s")


@contextmanager
def dagster_ui(home: Path, env: dict, port: int, log: Path):
    """`make ui`: dagster dev (webserver + daemon) in a process group of its own, stopped on exit."""
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    env = {**env, "DAGSTER_HOME": str(dagster_home)}
    command = [str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_default_sigint,
        )
        try:
            yield server
        finally:
            stop_group(server.pid, server)


def _default_sigint() -> None:
    # a background job of a non-interactive shell starts with SIGINT ignored, and passes that on
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop_group(pgid: int, leader: subprocess.Popen) -> None:
    """SIGINT to the group, as Ctrl-C to `make ui` (dagster dev stops its webserver, daemon and
    code server), then SIGTERM, then SIGKILL, until no process of the group is left."""
    for sig, grace in ((signal.SIGINT, 60), (signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            leader.poll()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            continue
        break
    leader.poll()


# --- the browser --------------------------------------------------------------------------


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROME_BIN") or shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless=new", f"--window-size={WIDTH},{HEIGHT}", "--force-device-scale-factor=1",
        "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars",
        "--no-first-run", "--disable-extensions", "--lang=en-US",
    ):
        options.add_argument(flag)
    driver_path = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    viewport(driver, WIDTH, HEIGHT)
    # Dagster's "Join the Dagster community" dialog (on localhost, once per browser): marked as
    # dismissed in this throwaway profile before any page script runs, not on the instance.
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": JS_DISMISS_NUX})
    return driver


JS_DISMISS_NUX = "try { localStorage.setItem('communityNux', JSON.stringify('1')); } catch (e) {}"


def viewport(driver, width: int, height: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def wait_for(driver, condition, what: str, timeout: float = 120):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition)
    except TimeoutException:
        shown = Path(tempfile.gettempdir()) / "mlops-screenshots-timeout.png"
        driver.save_screenshot(str(shown))
        sys.exit(f"timed out waiting for {what} at {driver.current_url} (what the page showed: {shown})")


def text_present(*texts: str):
    """Every text is on the page, as rendered (innerText)."""
    return lambda d: all(t in (d.execute_script("return document.body.innerText") or "") for t in texts)


def no_spinners(driver) -> bool:
    return not driver.execute_script(
        "return [...document.querySelectorAll('[class*=Spinner], [role=progressbar]')].some(e => e.offsetParent !== null)"
    )


def settle(driver, seconds: float = 1.5) -> None:
    """Let the last queries, renders and transitions finish once the content is there."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, 30, poll_frequency=0.5).until(no_spinners)
    except TimeoutException:
        print("  (a spinner is still showing; taking the picture anyway)", flush=True)
    time.sleep(seconds)


def close_dialogs(driver) -> None:
    """Escape any dialog over the page (there should be none)."""
    from selenium.webdriver.common.keys import Keys

    for _ in range(3):
        if not driver.execute_script(JS_DIALOG_OPEN):
            return
        driver.find_element("tag name", "body").send_keys(Keys.ESCAPE)
        time.sleep(0.5)
    print("  (a dialog is open over the page)", flush=True)


JS_DIALOG_OPEN = "return [...document.querySelectorAll('[role=dialog]')].some(e => e.offsetParent !== null || e.getClientRects().length)"


def click_button_with_text(driver, text: str) -> None:
    driver.execute_script(
        "const b = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === arguments[0]); if (b) b.click();", text,
    )


def save(driver, path: Path) -> None:
    close_dialogs(driver)
    png = shrink(driver.get_screenshot_as_png())
    path.write_bytes(png)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"wrote {shown} ({len(png) // 1024} KB) from {driver.current_url}", flush=True)


def shrink(png: bytes) -> bytes:
    """Optimized, and quantized to 256 colours if still large (UI screenshots have few colours)."""
    try:
        from PIL import Image
    except ImportError:
        return png
    image = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    if out.tell() > MAX_BYTES:
        out = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, "PNG", optimize=True)
    return out.getvalue() if out.tell() < len(png) else png


# --- the asset graph ----------------------------------------------------------------------

# The toggle next to the "Jump to..." box hides the graph's asset-group sidebar.
JS_HIDE_SIDEBAR = """
let n = document.querySelector('input[placeholder^="Jump to"]');
for (let k = 0; n && k < 5; k++) { n = n.parentElement; const b = n.querySelector('button'); if (b) { b.click(); return true; } }
return false;
"""

# Where the graph is, in screen coordinates: the free part of the viewport (less the bar with
# the asset filter and "Materialize all" drawn over its top, and the zoom controls over its right
# edge), and the box around every node and group header the viewport has rendered.
JS_GRAPH_BOUNDS = """
const v = document.querySelector('[data-svg-viewport]');
if (!v) return null;
const V = v.getBoundingClientRect();
let top = V.top, right = V.right;
const materialize = [...document.querySelectorAll('button')].find(b => b.innerText.trim().startsWith('Materialize'));
if (materialize) top = Math.max(top, materialize.getBoundingClientRect().bottom + 6);
const slider = document.querySelector('#zoom-slider-container');
if (slider) right = Math.min(right, slider.getBoundingClientRect().left);
let l = 1e9, t = 1e9, r = -1e9, b = -1e9, n = 0;
for (const e of v.querySelectorAll('svg foreignObject')) {
  const q = e.getBoundingClientRect();
  if (!q.width || !q.height) continue;
  n++; l = Math.min(l, q.left); t = Math.min(t, q.top); r = Math.max(r, q.right); b = Math.max(b, q.bottom);
}
return {area: [V.left, top, right - V.left, V.bottom - top], graph: [l, t, r - l, b - t], nodes: n};
"""

# The viewport's own wheel handling: ctrl+wheel zooms about the pointer, to scale * (1 - 0.002 *
# deltaY) when |deltaY| > 30; a plain wheel pans by -0.7 * delta.
JS_WHEEL = """
const v = document.querySelector('[data-svg-viewport]');
v.dispatchEvent(new WheelEvent('wheel', {bubbles: true, cancelable: true, ctrlKey: arguments[0],
  deltaX: arguments[1], deltaY: arguments[2], clientX: arguments[3], clientY: arguments[4]}));
"""


def zoom_to_fit(driver, margin: float = 0.95) -> None:
    """Scale and centre the whole graph in the free part of the viewport. The explorer fits only
    the width, and renders only the nodes on screen: so zoom out first, then measure and correct
    until the box around all the nodes fits and is centred."""
    bounds = driver.execute_script(JS_GRAPH_BOUNDS)
    if not bounds or not bounds["nodes"]:
        print("  (no graph viewport found; the graph is shown as the UI laid it out)", flush=True)
        return
    ax, ay, aw, ah = bounds["area"]
    driver.execute_script(JS_WHEEL, True, 0, 250, ax + aw / 2, ay + ah / 2)  # to half the size
    time.sleep(0.8)
    for _ in range(10):
        bounds = driver.execute_script(JS_GRAPH_BOUNDS)
        (ax, ay, aw, ah), (gx, gy, gw, gh) = bounds["area"], bounds["graph"]
        factor = min(aw * margin / gw, ah * margin / gh)
        gcx, gcy = gx + gw / 2, gy + gh / 2
        zoomed = abs(factor - 1) > 0.01
        if zoomed:  # about the graph's centre, which stays put
            delta = (1 - factor) / 0.002
            if abs(delta) <= 31:
                delta = 31 if delta > 0 else -31
            driver.execute_script(JS_WHEEL, True, 0, delta, gcx, gcy)
            time.sleep(0.8)
            continue
        dx, dy = ax + aw / 2 - gcx, ay + ah / 2 - gcy
        if abs(dx) <= 2 and abs(dy) <= 2:
            return
        driver.execute_script(JS_WHEEL, False, -dx / 0.7, -dy / 0.7, ax + aw / 2, ay + ah / 2)
        time.sleep(0.8)
    print("  (zoom to fit did not settle; the graph may be a little off)", flush=True)


# --- the three pictures -------------------------------------------------------------------


def shoot_graph(driver, base: str, out: Path) -> None:
    """The global asset lineage graph, every group expanded, zoomed to fit the window."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver.get(base + "/asset-groups")
    wait_for(driver, text_present("Global asset lineage", "registry", "explainability"), "the asset graph")
    close_dialogs(driver)
    # more room for the graph: the navigation down to icons, the group sidebar hidden
    click_button_with_text(driver, "Hide navigation")
    driver.execute_script(JS_HIDE_SIDEBAR)
    time.sleep(1)
    # the groups start collapsed; Alt+E is the graph's "Expand all groups" (it adds ?expanded=...)
    ActionChains(driver).key_down(Keys.ALT).send_keys("e").key_up(Keys.ALT).perform()
    wait_for(driver, text_present("registered_model", "shap_summary"), "the expanded groups")
    settle(driver)
    zoom_to_fit(driver)
    settle(driver, 2)
    save(driver, out / "asset_graph.png")  # the navigation stays collapsed for the next pages


def shoot_registered_model(driver, base: str, out: Path) -> None:
    """registered_model's Checks tab: its five blocking checks, the first one's latest result."""
    driver.get(base + "/assets/registered_model?view=checks")
    wait_for(driver, text_present("registered_model", "Checks (", "Latest execution", "Evaluation result"), "registered_model's checks")
    close_dialogs(driver)
    settle(driver)
    save(driver, out / "registered_model_checks.png")


def shoot_shap_summary(driver, base: str, out: Path) -> None:
    """shap_summary's Overview: status, description and the latest materialization's metadata."""
    viewport(driver, WIDTH, HEIGHT + 80)  # the whole metadata table
    try:
        driver.get(base + "/assets/shap_summary")
        wait_for(driver, text_present("shap_summary", "Latest materialization", "top_feature", "sample_rows"), "shap_summary's metadata")
        close_dialogs(driver)
        settle(driver, 2)
        save(driver, out / "shap_summary.png")
    finally:
        viewport(driver, WIDTH, HEIGHT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="an MLOPS_HOME the demo has run in (default: run the demo into a fresh temporary one)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go (default: docs/images)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the UI to load (default: 600)")
    args = parser.parse_args()
    os.nice(10)  # the demo, dagster dev and Chromium share the cores with everything else
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks stop dagster dev

    temporary = None
    if args.home is None:
        temporary = tempfile.mkdtemp(prefix="mlops-screenshots-")
        home = Path(temporary)
    else:
        home = args.home.resolve()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # as `make ui` has it: MLOPS_HOME, the Keras backend and the UI's own address for links
    env = {**os.environ, "MLOPS_HOME": str(home), "KERAS_BACKEND": "jax", "MLOPS_DAGSTER_URL": base}
    env.pop("DAGSTER_HOME", None)
    try:
        if temporary:
            run_demo(home, env)
        elif not (home / "dagster_home").is_dir():
            sys.exit(f"{home} has no dagster_home: run the demo into it first, or leave out --home")
        out = args.out.resolve()
        out.mkdir(parents=True, exist_ok=True)
        log = home / "screenshots-dagster-dev.log"
        print(f"starting dagster dev on {base} (log: {log}) ...", flush=True)
        with dagster_ui(home, env, port, log) as server:
            wait_for_ui(base, server, args.timeout)
            driver = browser()
            try:
                shoot_graph(driver, base, out)
                shoot_registered_model(driver, base, out)
                shoot_shap_summary(driver, base, out)
            finally:
                driver.quit()
        print("stopped dagster dev", flush=True)
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    finally:
        if temporary and Path(temporary).exists():
            print(f"kept {temporary} (the demo, its runs and the logs) to look into", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
