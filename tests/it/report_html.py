"""Checks an HTML report with python3's own parser (no package needed).

Usage: report_html.py FILE. Exits 1, saying why, unless the document is well formed
(every element closed in order, void elements aside), has each section of the report
(by id), an <svg> inside each chart figure, and no external URL: no src/href/action
attribute or CSS url() that reaches out (http:, https:, //), the SVG namespace
declaration aside (an identifier, never fetched). Prints a one-line summary.
"""
import re
import sys
from html.parser import HTMLParser

SECTIONS = ["host", "health", "timeline", "incidents", "forecasts", "latency",
            "processes", "recommendations"]
VOID = {"meta", "link", "br", "img", "input", "hr", "area", "base", "col", "embed",
        "source", "track", "wbr", "param"}
SVG_NS = "http://www.w3.org/2000/svg"
EXTERNAL = re.compile(r"^\s*(https?:|//)", re.I)


class Check(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.ids, self.problems = [], set(), []
        self.svgs_in_charts, self.figure_depth, self.charts = 0, None, 0
        self.in_style, self.css = False, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for k, v in attrs:
            if v is None:
                continue
            if k in ("src", "href", "action", "xlink:href", "poster") and EXTERNAL.match(v):
                self.problems.append(f"external URL in <{tag} {k}={v!r}>")
            if k == "xmlns" and v != SVG_NS and EXTERNAL.match(v):
                self.problems.append(f"unexpected namespace {v!r}")
            if k == "style" and "url(" in v:
                self.css.append(v)
        if tag == "figure" and "chart" in (a.get("class") or "").split():
            self.charts += 1
            self.figure_depth = len(self.stack)
        if tag == "svg" and self.figure_depth is not None:
            self.svgs_in_charts += 1
        if tag == "style":
            self.in_style = True
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag == "figure" and self.figure_depth == len(self.stack):
            self.figure_depth = None
        if tag == "style":
            self.in_style = False

    def handle_data(self, data):
        if self.in_style:
            self.css.append(data)


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    c = Check()
    c.feed(text)
    c.close()
    if c.stack:
        c.problems.append(f"unclosed: {c.stack}")
    for css in c.css:
        for u in re.findall(r"url\(([^)]*)\)", css):
            if EXTERNAL.match(u.strip("'\" ")):
                c.problems.append(f"external URL in CSS: {u}")
    missing = [s for s in SECTIONS if s not in c.ids]
    if missing:
        c.problems.append(f"sections missing: {missing}")
    if c.charts == 0 or c.svgs_in_charts < c.charts:
        c.problems.append(f"{c.charts} chart figures but {c.svgs_in_charts} SVGs in them")
    if c.problems:
        print("\n".join(c.problems))
        sys.exit(1)
    print(f"ok sections={len(SECTIONS)} charts={c.charts} svg={c.svgs_in_charts}")


main()
