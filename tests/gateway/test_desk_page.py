"""The review desk's page as files (issue 15): what its CSP relies on and what keeps untrusted text inert, checked
in the sources so a change that breaks either fails without a browser (test_desk_browser.py runs the page)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from services.gateway.desk import STATIC_DIR

# Every way a string becomes markup or code in a page: the desk's text goes through textContent and value only.
HTML_SINKS = re.compile(
    r"\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write|\beval\s*\(|new\s+Function\b"
    r"|setTimeout\(\s*['\"`]|createContextualFragment|srcdoc|DOMParser"
)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_scripts = 0
        self.styles = 0
        self.style_attributes: list[str] = []
        self.handlers: list[str] = []
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            self.scripts.append(named)
            self._in_script = True
        if tag == "style":
            self.styles += 1
        for name, value in attrs:
            if name == "style":
                self.style_attributes.append(tag)
            if name.startswith("on"):
                self.handlers.append(f"{tag} {name}")
            if name in ("src", "href") and value:
                self.urls.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def test_the_page_has_no_inline_script_or_style_and_loads_only_its_own_assets() -> None:
    page = _Page()
    page.feed((STATIC_DIR / "index.html").read_text())
    assert page.scripts == [{"type": "module", "src": "/desk/static/desk.js"}]
    assert page.inline_scripts == 0 and page.styles == 0
    assert page.style_attributes == [] and page.handlers == []
    # "data:," is the empty icon: the browser asks the gateway for no /favicon.ico
    assert all(url.startswith(("/desk/", "#")) or url == "data:," for url in page.urls), page.urls


def test_untrusted_text_has_no_way_into_markup_or_code() -> None:
    for path in sorted(Path(STATIC_DIR).glob("*.js")):
        source = path.read_text()
        assert not HTML_SINKS.findall(source), f"{path.name}: {HTML_SINKS.findall(source)}"
        # attributes are set from a closed list of inert names (el() throws on any other)
        assert ".setAttribute(" in source and "SAFE_ATTRIBUTES" in source
        assert not re.search(r"\bhttps?://", source), f"{path.name} names an outside URL"


def test_the_stylesheet_loads_nothing_from_outside() -> None:
    css = (STATIC_DIR / "desk.css").read_text()
    assert "@import" not in css and not re.search(r"url\(\s*['\"]?(https?:)?//", css)
