"""Data Docs that work with the network off, and links to them that a browser opens from the Dagster UI.

Great Expectations' pages load jQuery, Bootstrap, bootstrap-table, Font Awesome and Vega from public CDNs and
a logo from S3 (with the data context's id in the URL). :func:`make_offline` copies the same files, vendored
in ``quality/datadocs_assets/`` (versions and licences in its README), into the site's ``static/vendor/`` and
points every page at them by a relative path, and the logo at the copy GX ships in ``static/images``. A page
then loads nothing from outside the site: :func:`external_resources` lists what a page would still fetch
(scripts, style sheets, images, icons, fonts), and the tests require it to be empty.

A browser refuses a ``file://`` link on an ``http://`` page such as the Dagster UI, so the docs are served over
HTTP next to it (``hub serve-docs``, started by ``make ui``) and a check links to
``<HUB_DATA_DOCS_URL>/<page>`` (:func:`docs_url`; default http://127.0.0.1:3001).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent / "datadocs_assets"
VENDOR = "static/vendor"
DEFAULT_URL = "http://127.0.0.1:3001"

# What GX's templates load -> the vendored file that replaces it (under static/vendor/).
CDN: dict[str, str] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper-1.12.9.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table-1.19.1.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table-1.19.1.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table-filter-control-1.19.1.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-filter-control-1.19.1.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-filter-control-1.19.1.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker-1.9.0.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker-1.9.0.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-prefers-dark-1.1.0.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-6.6.0/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0.min.js",
}
# GX's logos from S3 (logo-long.png with a date and the data context id as query parameters; a dark-mode
# logo in a style sheet): the long logo GX ships in static/images stands for both.
_S3_LOGO = re.compile(r"https://great-expectations-web-assets\.s3[^\"'\s)]*")
_STATIC = re.compile(r"""(\b(?:src|href)=)(["'])(?:\./|(?:\.\./)+)?static/""")
_URL = re.compile(r"""(\b(?:src|href)=)(["'])(https?://[^"']+)\2""")


def make_offline(docs_dir: Path, pages: list[Path] | None = None) -> int:
    """Vendor the assets into ``docs_dir/static/vendor`` and point the pages at them; returns the number of
    pages rewritten. ``pages``: only these (the ones a build just wrote; a page not yet there is passed
    over), else every page of the site. Idempotent: a page already rewritten is left as it is."""
    docs_dir = Path(docs_dir)
    vendor = docs_dir / VENDOR
    for src in ASSETS_DIR.rglob("*"):  # copied once: a file already there with the same size is kept
        if src.is_file() and src.name != "README.md":
            dst = vendor / src.relative_to(ASSETS_DIR)
            if not dst.exists() or dst.stat().st_size != src.stat().st_size:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    changed = 0
    for page in (docs_dir.rglob("*.html") if pages is None else [Path(p) for p in pages if Path(p).is_file()]):
        text = page.read_text(encoding="utf-8")
        static = Path(os.path.relpath(docs_dir / "static", page.parent)).as_posix()

        def local(m: re.Match, static: str = static) -> str:
            target = CDN.get(m.group(3))
            return f"{m.group(1)}{m.group(2)}{static}/vendor/{target}{m.group(2)}" if target else m.group(0)

        new = _S3_LOGO.sub(f"{static}/images/logo-long.png", _URL.sub(local, text))
        # GX's own links into static/ go one level short on validation pages (the favicon): fix the depth
        new = _STATIC.sub(lambda m, static=static: f"{m.group(1)}{m.group(2)}{static}/", new)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed += 1
    for sheet in (docs_dir / "static" / "styles").glob("*.css"):  # GX's own styles name the dark logo too
        text = sheet.read_text(encoding="utf-8")
        new = _S3_LOGO.sub("../images/logo-long.png", text)
        if new != text:
            sheet.write_text(new, encoding="utf-8")
    return changed


def external_in_css(css: str) -> list[str]:
    """URLs outside the site that a style sheet makes the browser fetch (``url(...)``, ``@import``)."""
    urls = re.findall(r"url\(\s*['\"]?([^'\")]+)", css) + re.findall(r"@import\s+['\"]([^'\"]+)", css)
    return [u for u in urls if re.match(r"(?i)(https?:)?//", u.strip())]


class _Resources(HTMLParser):
    """What a browser fetches by itself while showing a page (links a reader may follow are not fetched)."""

    FETCHED_LINKS = {"stylesheet", "icon", "shortcut", "preload", "modulepreload", "prefetch", "manifest"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("script", "img", "iframe", "source", "embed", "audio", "video") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and set(a.get("rel", "").lower().split()) & self.FETCHED_LINKS:
            self.urls.append(a.get("href", ""))
        if a.get("style"):
            self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", a["style"])

    def handle_data(self, data: str) -> None:
        if self.lasttag == "style":
            self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", data)
            self.urls += re.findall(r"@import\s+['\"]([^'\"]+)", data)


def external_resources(html: str) -> list[str]:
    """Every URL outside the site that a browser would fetch to show ``html``."""
    parser = _Resources()
    parser.feed(html)
    return [u for u in parser.urls if re.match(r"(?i)(https?:)?//", u.strip())]


def docs_url(page: Path, docs_dir: Path, base_url: str | None = None) -> str:
    """The http URL of a Data Docs page as served by ``hub serve-docs`` (``HUB_DATA_DOCS_URL``)."""
    if base_url is None:
        from hub.settings import Settings

        base_url = Settings.from_env().data_docs_url
    relative = Path(os.path.relpath(page, docs_dir)).as_posix()
    return f"{base_url.rstrip('/')}/{relative}"


def serve(docs_dir: Path, host: str = "127.0.0.1", port: int = 3001) -> http.server.ThreadingHTTPServer:
    """An HTTP server for the Data Docs site, serving in a daemon thread (``server.shutdown()`` stops it)."""
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet: the UI's terminal is shared
            pass

    server = http.server.ThreadingHTTPServer((host, port), functools.partial(Handler, directory=str(docs_dir)))
    threading.Thread(target=server.serve_forever, name="data-docs", daemon=True).start()
    return server
