"""Take the README's screenshots of the chat page, at desktop and phone sizes, in headless Chromium.

Starts gunicorn with a trained model on a free loopback port, has a short conversation on the
page at each size, and saves docs/chat-desktop.png and docs/chat-phone.png. Run it with
``make screenshots``; it needs Debian's chromium and the dev requirements (playwright).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"]
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
CONVERSATION = ["Hello", "What can you do?"]


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(model: Path, timeout: float = 30.0) -> Iterator[str]:
    """Run gunicorn with the model on a free loopback port and yield its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CHATBOT_MODEL": str(model), "HOST": "127.0.0.1", "PORT": str(port)}
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_ready(url, process, timeout)
            yield url
        except BaseException:
            log.seek(0)
            print(log.read(), file=sys.stderr)
            raise
        finally:
            process.terminate()
            process.wait(timeout=30)


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Poll /readyz until the server answers, or fail if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise RuntimeError(f"the server did not become ready within {timeout:.0f} s")


def converse(page: Page, messages: list[str]) -> None:
    """Send each message and wait for its answer."""
    box = page.get_by_role("textbox")
    answers = page.locator(".cb-log .cb-row-bot:not(.cb-welcome)")
    for count, message in enumerate(messages, start=1):
        box.fill(message)
        box.press("Enter")
        expect(answers).to_have_count(count)
    expect(page.get_by_role("status")).to_be_hidden()


def take_screenshots(url: str, out: Path) -> list[Path]:
    """Save one screenshot of the page per size and return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, viewport in SIZES.items():
                phone = name == "phone"
                context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
                page = context.new_page()
                page.goto(f"{url}/")
                converse(page, CONVERSATION)
                page.get_by_role("textbox").blur()  # no focus ring or blinking caret in the picture
                path = out / f"chat-{name}.png"
                page.screenshot(path=path)
                paths.append(path)
                context.close()
        finally:
            browser.close()
    return paths


def main() -> int:
    """Parse the arguments, serve the model and take the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "chatbot_model.h5")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    with running_server(args.model.resolve()) as url:
        for path in take_screenshots(url, args.out):
            print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
