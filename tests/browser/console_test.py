"""Browser walk-through of the owners' console at /console (headless Debian Chromium).

register → upload a PNG through the file input → the tile shows its ThumbHash placeholder, then
the thumbnail → ops builder: width 200, WebP → the preview is 200 px wide and the signed URL
says so, the srcset snippet is there → delete through the in-page confirm → the gallery is
empty → log out. The browser log must hold no SEVERE entry (JS errors, CSP violations, failed
loads).

The walk-through runs twice: in a 1280×800 window and as a 390×844 phone (Chromium's mobile
emulation: a touch device whose page zooms out when it is wider than the screen). On every
screen the page must be no wider than the viewport, and axe-core (AXE_JS, injected) must find
no serious or critical violation; opening an image must move focus to the transform panel and
bring it into view.

Run it through tests/browser/run.sh, which starts the server; directly:
    IMGEDGE_BASE_URL=http://127.0.0.1:8080 BROWSER_OUT=target/browser python console_test.py
"""

import os
import secrets
import struct
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import zlib

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE_URL = os.environ.get("IMGEDGE_BASE_URL", "http://127.0.0.1:8080").rstrip("/")
OUT_DIR = os.environ.get("BROWSER_OUT", "target/browser")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT_SECS = float(os.environ.get("BROWSER_WAIT_SECS", "30"))
AXE_JS = os.environ.get("AXE_JS", "")
DESKTOP = (1280, 800)
PHONE = (390, 844)
CSP_PARTS = ("default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:",
             "connect-src 'self'", "frame-ancestors 'none'")


def png_bytes(width, height):
    """An RGB PNG with a diagonal colour gradient and a few stripes (stdlib only)."""
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # filter: none
        for x in range(width):
            r = (x * 255) // (width - 1)
            g = (y * 255) // (height - 1)
            b = 255 - ((x + y) * 255) // (width + height - 2)
            if (x // 40 + y // 40) % 7 == 0:
                r, g, b = 255 - r, 255 - g, 255 - b
            row += bytes((r, g, b))
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 6)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def new_driver(phone):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    if phone:
        width, height = PHONE
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2, "touch": True, "mobile": True},
            "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                         "Chrome/156.0 Mobile Safari/537.36",
        })
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,800",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    if not phone:
        options.add_argument("--force-device-scale-factor=1")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    if not phone:
        # A 1280×800 viewport: the window size less what the browser's own frame takes.
        driver.set_window_size(*DESKTOP)
        inner_w, inner_h = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        if (inner_w, inner_h) != DESKTOP:
            driver.set_window_size(2 * DESKTOP[0] - inner_w, 2 * DESKTOP[1] - inner_h)
    return driver


class ConsoleWalkThrough(unittest.TestCase):
    PHONE = False

    def setUp(self):
        os.makedirs(OUT_DIR, exist_ok=True)
        self.screenshot = os.path.join(OUT_DIR, "console-phone.png" if self.PHONE else "console-desktop.png")
        self.driver = new_driver(self.PHONE)
        self.wait = WebDriverWait(self.driver, WAIT_SECS, poll_frequency=0.1)
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.driver.quit()
        self.tmp.cleanup()

    def run_failing_loudly(self, steps):
        """Runs steps; on any failure saves the screenshot and prints the browser log first."""
        try:
            steps()
        except BaseException:
            self.save_screenshot()
            try:
                for entry in self.driver.get_log("browser"):
                    print(f"browser log: {entry['level']} {entry['message']}", file=sys.stderr)
            except Exception:
                pass
            raise

    def save_screenshot(self):
        try:
            self.driver.save_screenshot(self.screenshot)
            print(f"screenshot: {self.screenshot}", file=sys.stderr)
        except Exception as e:  # the browser may be gone
            print(f"no screenshot: {e}", file=sys.stderr)

    # ---- helpers

    def until(self, condition, message):
        try:
            return self.wait.until(condition, message)
        except TimeoutException:
            raise AssertionError(f"timed out after {WAIT_SECS:.0f} s: {message}") from None

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def visible(self, element_id):
        return self.until(EC.visibility_of_element_located((By.ID, element_id)), f"#{element_id} visible")

    def fetch_json(self, path):
        """GET path with the console's own token (from sessionStorage), as the page would."""
        return self.driver.execute_async_script(
            """
            const [path, done] = arguments;
            const token = sessionStorage.getItem("imgedge.console.token");
            fetch(path, {headers: {Authorization: "Bearer " + token}})
              .then(r => r.json().then(body => done({status: r.status, body})))
              .catch(e => done({status: 0, body: String(e)}));
            """,
            path,
        )

    def severe_logs(self):
        return [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def check_screen(self, screen):
        """This screen fits the viewport and axe-core finds nothing serious or critical on it."""
        widths = self.js("const e = document.documentElement; return [e.scrollWidth, e.clientWidth, window.innerWidth]")
        self.assertLessEqual(widths[0], widths[1], f"{screen}: the page is wider than the screen {widths}")
        if self.PHONE:
            self.assertEqual(widths[2], PHONE[0], f"{screen}: the phone's viewport is zoomed out {widths}")
        if not AXE_JS:
            raise AssertionError("AXE_JS (axe-core's axe.min.js) is not set; run through tests/browser/run.sh")
        if not self.js("return typeof axe !== 'undefined'"):
            with open(AXE_JS, encoding="utf-8") as f:
                self.js(f.read())
        violations = self.driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            axe.run(document, {resultTypes: ["violations"]})
              .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact,
                  nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary)}))))
              .catch(e => done([{id: "axe-error", impact: "critical", nodes: [String(e)]}]));
            """
        )
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        self.assertEqual(bad, [], f"{screen}: axe-core violations")
        for v in violations:
            print(f"{screen}: axe {v['impact']} {v['id']}: {v['nodes'][:2]}", file=sys.stderr)

    # ---- the walk-through

    def test_walk_through(self):
        self.run_failing_loudly(self.walk_through)

    def walk_through(self):
        d = self.driver
        started = time.monotonic()
        d.set_script_timeout(WAIT_SECS)

        # The three files, and the policy the page is served with.
        for path, kind in (("/console", "text/html"), ("/console/console.js", "javascript"),
                           ("/console/console.css", "text/css")):
            try:
                res = urllib.request.urlopen(f"{BASE_URL}{path}", timeout=10)
            except urllib.error.HTTPError as e:
                raise AssertionError(f"GET {path}: {e.code} (is the console route wired into the server?)") from None
            with res:
                self.assertEqual(res.status, 200, path)
                self.assertIn(kind, res.headers.get("Content-Type", ""), f"Content-Type of {path}")
                if path == "/console":
                    csp = res.headers.get("Content-Security-Policy", "")
                    for part in CSP_PARTS:
                        self.assertIn(part, csp, "the console's Content-Security-Policy")
        d.get(f"{BASE_URL}/console")
        self.assertIn("imgedge", d.title, "/console serves the console page")
        self.visible("auth-view")
        self.check_screen("sign-in")

        # Register a new owner.
        username = "console-" + secrets.token_hex(4)
        self.visible("username").send_keys(username)
        d.find_element(By.ID, "password").send_keys("correct horse battery")
        d.find_element(By.ID, "register").click()
        self.visible("app-view")
        self.until(lambda _: d.find_element(By.ID, "whoami").text == username, "the header names the new user")
        self.until(
            lambda _: "transforms today" in d.find_element(By.ID, "quota-text").text,
            "the quota meter shows today's transforms",
        )
        self.assertTrue(self.js("return !!sessionStorage.getItem('imgedge.console.token')"), "JWT in sessionStorage")
        self.assertEqual(self.js("return document.cookie"), "", "no cookies")
        self.visible("gallery-empty")
        self.check_screen("empty gallery")

        # Upload an 800×600 PNG through the file input.
        path = os.path.join(self.tmp.name, "gradient.png")
        with open(path, "wb") as f:
            f.write(png_bytes(800, 600))
        d.find_element(By.ID, "file-input").send_keys(path)
        tile = self.until(
            EC.presence_of_element_located((By.CSS_SELECTOR, "#gallery .tile[data-image-id]")),
            "a gallery tile for the upload",
        )
        image_id = tile.get_attribute("data-image-id")
        self.assertTrue(image_id)

        # The ThumbHash placeholder first (a decoded data: URL), then the real thumbnail.
        placeholder = tile.find_element(By.CSS_SELECTOR, "img.placeholder")
        self.assertTrue(placeholder.get_attribute("src").startswith("data:image/png"), "placeholder is a data: URL")
        self.until(
            lambda _: self.js("const i = arguments[0]; return i.complete && i.naturalWidth > 0", placeholder),
            "the placeholder decodes",
        )
        thumb = tile.find_element(By.CSS_SELECTOR, "img.thumb")
        self.until(
            lambda _: self.js(
                "const i = arguments[0]; return i.classList.contains('loaded') && i.complete && i.naturalWidth > 0",
                thumb,
            ),
            "the thumbnail loads",
        )
        thumb_src = thumb.get_attribute("src")
        self.assertIn(f"/i/{image_id}/", thumb_src)
        self.assertIn("sig=", thumb_src)
        self.assertEqual(self.js("return arguments[0].naturalWidth", thumb), 240)

        # The ops builder: opening an image moves focus to it and brings it into view (on a
        # phone it sits below the whole gallery).
        tile.find_element(By.CSS_SELECTOR, "button.tile-button").click()
        self.visible("builder")
        self.until(lambda _: self.js("return document.activeElement.id") == "builder-title", "focus on the panel")
        top = self.js("return document.getElementById('builder').getBoundingClientRect().top")
        self.assertTrue(0 <= top < self.js("return window.innerHeight") / 2, f"the panel is in view (top {top})")
        width = self.visible("ops-width")
        width.clear()
        width.send_keys("200")
        Select(d.find_element(By.ID, "ops-format")).select_by_value("webp")
        self.assertEqual(d.find_element(By.ID, "ops-raw").get_attribute("value"), "w_200,fmt_webp")
        preview = d.find_element(By.ID, "preview")
        self.until(
            lambda _: self.js(
                """
                const p = arguments[0], src = p.getAttribute('src') || '';
                return p.dataset.state === 'loaded' && p.complete && src.includes('w_200')
                    && src.includes('fmt_webp') && p.naturalWidth === 200;
                """,
                preview,
            ),
            "the preview loads at 200 px wide as WebP",
        )
        signed = d.find_element(By.ID, "signed-url").text
        self.assertIn("w_200", signed)
        self.assertIn("fmt_webp", signed)
        self.assertIn("sig=", signed)
        self.assertEqual(self.js("return arguments[0].naturalHeight", preview), 150)
        self.until(lambda _: "srcset=" in d.find_element(By.ID, "srcset-snippet").text, "the srcset snippet")
        snippet = d.find_element(By.ID, "srcset-snippet").text
        self.assertIn("320w", snippet)
        self.assertIn("fmt_webp", snippet)
        self.assertNotIn("960w", snippet, "srcset widths are capped at the 800 px source")
        self.until(
            lambda _: d.find_element(By.ID, "quota-text").text.startswith(("2 /", "3 /")),
            "the quota meter counts the thumbnail and preview transforms",
        )
        self.check_screen("transform panel")
        self.save_screenshot()

        # Quality takes q_auto's levels as well as numbers.
        quality = self.visible("ops-quality")
        quality.clear()
        quality.send_keys("auto:eco")
        self.assertEqual(d.find_element(By.ID, "ops-raw").get_attribute("value"), "w_200,fmt_webp,q_auto:eco")
        self.until(
            lambda _: self.js(
                """
                const p = arguments[0], src = p.getAttribute('src') || '';
                return p.dataset.state === 'loaded' && p.complete && src.includes('q_auto:eco')
                    && p.naturalWidth === 200;
                """,
                preview,
            ),
            "the preview loads with q_auto:eco",
        )

        # Purge the cached variants: the API answers 204 and the console says so.
        d.find_element(By.ID, "purge").click()
        self.until(lambda _: "purged" in d.find_element(By.ID, "toast").text, "the purge is confirmed")

        # Delete, through the in-page confirm.
        d.find_element(By.ID, "delete").click()
        self.visible("confirm-delete")
        self.check_screen("delete confirmation")
        d.find_element(By.ID, "confirm-delete").click()
        self.until(
            lambda _: not d.find_elements(By.CSS_SELECTOR, "#gallery .tile[data-image-id]"),
            "the tile is gone",
        )
        self.visible("gallery-empty")
        listing = self.fetch_json("/v1/images")
        self.assertEqual(listing["status"], 200)
        self.assertEqual(listing["body"]["items"], [], "the API lists no image")

        # Three more uploads with at most two transforms of the day's four left: the console
        # holds back the thumbnails the quota cannot pay for, and says so.
        left = 4 - int(self.fetch_json("/v1/me")["body"]["quota"]["used"])
        self.assertIn(left, (1, 2))
        for i in range(3):
            path = os.path.join(self.tmp.name, f"more-{i}.png")
            with open(path, "wb") as f:
                f.write(png_bytes(300 + 10 * i, 200))
            d.find_element(By.ID, "file-input").send_keys(path)
        self.until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#gallery .tile[data-image-id]")) == 3, "three tiles")
        self.visible("thumbs-paused")
        self.assertIn("daily quota", d.find_element(By.ID, "thumbs-paused-text").text)
        self.assertTrue(d.find_elements(By.CSS_SELECTOR, "#gallery .tile button.tile-load"), "a tile offers to load")
        asked = self.js("return document.querySelectorAll('#gallery img.thumb[src]').length")
        held = len(d.find_elements(By.CSS_SELECTOR, "#gallery .tile button.tile-load"))
        self.assertEqual((asked, held), (left, 3 - left), "thumbnails asked for: as many as the quota left")
        self.check_screen("gallery with held thumbnails")
        d.execute_script("window.scrollTo(0, 0)")
        d.save_screenshot(self.screenshot.replace(".png", "-gallery.png"))

        # The publish switch on a tile: the API says the image is public, then private again.
        switch = d.find_element(By.CSS_SELECTOR, "#gallery .tile .publish input")
        published_id = switch.find_element(By.XPATH, "ancestor::figure").get_attribute("data-image-id")
        switch.click()
        self.until(lambda _: self.fetch_json(f"/v1/images/{published_id}")["body"]["public"] is True, "published")
        self.until(lambda _: switch.is_enabled(), "the switch is ready again")
        switch.click()
        self.until(lambda _: self.fetch_json(f"/v1/images/{published_id}")["body"]["public"] is False, "un-published")

        # Nothing went wrong in the page: no JS error, no CSP violation, no failed load.
        severe = self.severe_logs()
        self.assertEqual(severe, [], f"browser log has SEVERE entries: {severe}")

        # Log out: the token leaves sessionStorage.
        d.find_element(By.ID, "logout").click()
        self.visible("auth-view")
        self.assertIsNone(self.js("return sessionStorage.getItem('imgedge.console.token')"))
        print(f"walk-through took {time.monotonic() - started:.1f} s", file=sys.stderr)


class ConsoleWalkThroughOnAPhone(ConsoleWalkThrough):
    PHONE = True


if __name__ == "__main__":
    unittest.main(verbosity=2)
