"""Drive a real TensorBoard: start the server on a log folder, ask its HTTP data API, and load
its pages in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
selenium). TensorBoard's pages are web components: :data:`DEEP_TEXT` reads text through
their shadow roots.

As a script it saves the screenshots the docs show::

    python -m tests.helpers.tensorboard_browser thermo_demo docs/figures
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("THERMO_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("THERMO_CHROMEDRIVER", "/usr/bin/chromedriver")

#: the page's visible text, through shadow roots (style and script text left out)
DEEP_TEXT = """
const out = [];
function walk(node) {
  if (!node || node.tagName === 'STYLE' || node.tagName === 'SCRIPT') return;
  if (node.nodeType === 3) out.push(node.textContent);
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.childNodes) walk(child);
}
walk(document.body);
return out.join(' ').replace(/\\s+/g, ' ');
"""

#: images loaded in the page (through shadow roots): [[src, naturalWidth], ...]
DEEP_IMAGES = """
const out = [];
function walk(node) {
  if (!node) return;
  if (node.tagName === 'IMG') out.push([node.src, node.naturalWidth]);
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.children || []) walk(child);
}
walk(document.body);
return out;
"""


#: scroll the element whose own text is arguments[0] (through shadow roots) to the top
DEEP_SCROLL = """
const wanted = arguments[0];
let found = null;
function walk(node) {
  if (!node || found) return;
  if (node.nodeType === 1 && node.children.length === 0
      && (node.textContent || '').trim() === wanted) { found = node; return; }
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.children || []) walk(child);
}
walk(document.body);
if (found) found.scrollIntoView({block: 'start'});
return found !== null;
"""


def browser_available() -> str | None:
    """Why the browser test cannot run here (``None``: it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium missing (pip install -e '.[test]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def tensorboard_server(logdir: Path, timeout: float = 60.0) -> Iterator[str]:
    """``tensorboard --logdir logdir`` on a free port; yields its base URL once every run
    under ``logdir`` is listed."""
    port = _free_port()
    exe = shutil.which("tensorboard") or str(Path(sys.executable).parent / "tensorboard")
    proc = subprocess.Popen([exe, "--logdir", str(logdir), "--port", str(port),
                             "--host", "127.0.0.1", "--reload_interval", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited: {proc.stderr.read()[-2000:]}")
            with contextlib.suppress(OSError):
                if get_json(url, "/data/runs"):
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"tensorboard listed no run within {timeout} s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def get_json(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST ``body`` as JSON) ``url + path`` and decode the answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data,
                                      headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def session_groups(url: str) -> dict[str, Any]:
    """The hparams table as TensorBoard serves it (every status, one page)."""
    return get_json(url, "/data/plugin/hparams/session_groups", {
        "experimentName": "", "startIndex": 0, "sliceSize": 10_000, "colParams": [],
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                            "STATUS_RUNNING"]})


@contextlib.contextmanager
def chromium(width: int = 1500, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium driven by selenium (flags for a machine without a network)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_tab(driver: Any, url: str, tab: str, ready: Callable[[str], bool],
             timeout: float = 60.0) -> str:
    """Load TensorBoard's ``tab`` afresh and wait until ``ready(page text)``; returns the
    text. Raises ``TimeoutError`` with the text's start when it never is."""
    driver.get("about:blank")
    driver.get(f"{url}/#{tab}")
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = driver.execute_script(DEEP_TEXT)
        if ready(text):
            return text
        time.sleep(0.5)
    raise TimeoutError(f"#{tab} not ready within {timeout} s; the page said: {text[:600]}")


def matches_after(text: str, title: str) -> int | None:
    """The "Matches (n)" count the custom-scalars tab shows under the chart ``title``."""
    at = text.find(title)
    if at < 0:
        return None
    found = re.search(r"Matches \((\d+)\)", text[at:])
    return int(found.group(1)) if found else None


def screenshots(logdir: Path, out: Path) -> list[Path]:
    """Screenshots of the custom-scalars tab (the report's two categories), the hparams and
    the images tabs for ``logdir``."""
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with tensorboard_server(logdir) as url, chromium(width=1900) as driver:
        time.sleep(3)  # let the server read every event file
        # smoothing off (the sweep's steps are learning rates, not a time series) and every
        # point in the charts' scales (TensorBoard keeps that setting in local storage)
        driver.get(url)
        driver.execute_script("window.localStorage.setItem('_ignoreYOutliers', 'false');")
        open_tab(driver, url, "custom_scalars&_smoothingWeight=0",
                 lambda t: (matches_after(t, "F along training") or 0) > 0)
        time.sleep(4)  # the charts draw after their data arrives
        driver.execute_script(DEEP_SCROLL, "F along training (F = U - T S)")
        time.sleep(2)
        driver.save_screenshot(str(out / "tensorboard_custom_scalars.png"))
        saved.append(out / "tensorboard_custom_scalars.png")
        across = "thermo report: across the sweep (x: sweep step, see sweep/steps)"
        if not driver.execute_script(DEEP_SCROLL, across):
            raise RuntimeError(f"no category {across!r} on the page")
        time.sleep(2)
        driver.save_screenshot(str(out / "tensorboard_sweep.png"))
        saved.append(out / "tensorboard_sweep.png")
        open_tab(driver, url, "hparams",
                 lambda t: re.search(r"Number of matching session groups: \d", t) is not None)
        time.sleep(3)
        driver.save_screenshot(str(out / "tensorboard_hparams.png"))
        saved.append(out / "tensorboard_hparams.png")
        open_tab(driver, url, "images", lambda t: "report/temperature" in t)
        time.sleep(3)
        driver.save_screenshot(str(out / "tensorboard_images.png"))
        saved.append(out / "tensorboard_images.png")
    return saved


if __name__ == "__main__":
    for path in screenshots(Path(sys.argv[1]), Path(sys.argv[2])):
        print(path)
