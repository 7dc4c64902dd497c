#!/usr/bin/env python3
"""Drive headless Chromium through the DevTools protocol, as a person would use a page.

Used by tests/it/dashboard.rs and to make the README's screenshots. Talks to Chromium
over --remote-debugging-pipe (file descriptors 3 and 4, NUL-separated JSON), so it
needs nothing but python3 and chromium.

    cdp.py PLAN.json   (or - for stdin)

PLAN: {"base": "http://127.0.0.1:9187", "auth": "user:password" (optional),
       "shots": "target/screenshots", "steps": [STEP, ...]}
STEP (its keys are done in this order: open, fill, click, js, wait, count, text, shot):
      {"open": "/path"}            load a page, wait for it and for its first poll;
      {"count": ["css", ...]}      count elements matching each selector;
      {"text": ["css", ...]}       the text of the first match of each;
      {"fill": ["css", "text"]}    focus an input and type the text;
      {"click": "css"}             a real mouse click at the element's centre; waits for
                                   the page it leads to when it navigates;
      {"js": "expression"}         evaluate it in the page (promises awaited), the value
                                   returned as "js";
      {"shot": "name.png"}         a full-page screenshot into "shots";
      {"wait": seconds}
Prints one JSON object: {"steps": [result, ...], "errors": [console errors and
uncaught exceptions, with the page they happened on]}.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


class Browser:
    def __init__(self):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            sys.exit("chromium not found (Debian: apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="anomalyd-cdp-")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking",
             "--hide-scrollbars", "--remote-debugging-pipe",
             "--user-data-dir=" + self.profile, "--window-size=1280,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds, pass_fds=(3, 4, to_chrome_r, from_chrome_w))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read(self, timeout):
        import select
        end = time.time() + timeout
        while b"\0" not in self.buf:
            left = end - time.time()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            r, _, _ = select.select([self.from_chrome], [], [], left)
            if r:
                chunk = os.read(self.from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium exited")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=True, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read(timeout)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method, timeout=30):
        end = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            left = end - time.time()
            if left <= 0:
                raise TimeoutError(f"no {method}")
            self.events.append(self._read(left))

    def drain(self, seconds):
        end = time.time() + seconds
        while True:
            left = end - time.time()
            if left <= 0:
                return
            try:
                self.events.append(self._read(left))
            except TimeoutError:
                return

    def js(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "-"
    plan = json.load(sys.stdin if src == "-" else open(src))
    base = plan["base"].rstrip("/")
    shots = plan.get("shots", "target/screenshots")
    os.makedirs(shots, exist_ok=True)
    b = Browser()
    results, errors = [], []
    page = None
    try:
        target = b.call("Target.createTarget", {"url": "about:blank"}, session=False)
        b.session = b.call("Target.attachToTarget",
                           {"targetId": target["targetId"], "flatten": True},
                           session=False)["sessionId"]
        for m in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            b.call(m)
        if plan.get("auth"):
            token = base64.b64encode(plan["auth"].encode()).decode()
            b.call("Network.setExtraHTTPHeaders",
                   {"headers": {"Authorization": "Basic " + token}})
        b.call("Emulation.setDeviceMetricsOverride",
               {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})

        def collect():
            keep = []
            for e in b.events:
                m, p = e.get("method"), e.get("params", {})
                if m == "Runtime.exceptionThrown":
                    d = p["exceptionDetails"]
                    errors.append({"page": page, "error": d.get("exception", {}).get(
                        "description", d.get("text"))})
                elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    errors.append({"page": page, "error": " ".join(
                        str(a.get("value", a.get("description"))) for a in p.get("args", []))})
                elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                    errors.append({"page": page, "error": p["entry"].get("text")})
                elif m in ("Page.loadEventFired", "Network.responseReceived"):
                    keep.append(e)
            b.events = keep

        def loaded(timeout=30):
            b.wait_event("Page.loadEventFired", timeout)
            # Let the page's script poll once and the charts settle.
            b.drain(1.5)

        for step in plan["steps"]:
            r = {"step": step}
            if "open" in step:
                page = step["open"]
                b.events = [e for e in b.events if e.get("method") != "Page.loadEventFired"]
                b.call("Page.navigate", {"url": base + page})
                loaded()
                r["url"] = b.js("location.pathname + location.search")
            if "fill" in step:
                sel, text = step["fill"]
                b.js(f"document.querySelector({json.dumps(sel)}).focus()")
                b.call("Input.insertText", {"text": text})
            if "click" in step:
                sel = json.dumps(step["click"])
                b.js(f"document.querySelector({sel}).scrollIntoView({{block: 'center'}})")
                x, y = b.js(f"(() => {{ const r = document.querySelector({sel}).getBoundingClientRect();"
                            " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
                # Mark this document: the page the click leads to is a new one.
                b.js("window.cdpBefore = 1")
                for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
                    b.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                                                        "button": "left", "clickCount": 1})
                end = time.time() + 10
                while time.time() < end:
                    try:
                        if b.js("window.cdpBefore === undefined && document.readyState === 'complete'"):
                            break
                    except RuntimeError:
                        pass  # the old document is gone, the new one not there yet
                    b.drain(0.1)
                b.drain(1.5)
                r["url"] = b.js("location.pathname + location.search")
            if "js" in step:
                r["js"] = b.js(step["js"])
            if "wait" in step:
                b.drain(step["wait"])
            if "count" in step:
                r["count"] = {s: b.js(f"document.querySelectorAll({json.dumps(s)}).length")
                              for s in step["count"]}
            if "text" in step:
                r["text"] = {s: b.js(f"(document.querySelector({json.dumps(s)}) || {{}}).textContent || null")
                             for s in step["text"]}
            if "shot" in step:
                size = b.call("Page.getLayoutMetrics")["cssContentSize"]
                height = min(int(size["height"]) + 1, 6000)
                b.call("Emulation.setDeviceMetricsOverride",
                       {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False})
                png = b.call("Page.captureScreenshot", {"format": "png"})["data"]
                b.call("Emulation.setDeviceMetricsOverride",
                       {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
                path = os.path.join(shots, step["shot"])
                with open(path, "wb") as f:
                    f.write(base64.b64decode(png))
                r["shot"] = path
            collect()
            results.append(r)
    finally:
        b.close()
    json.dump({"steps": results, "errors": errors}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
