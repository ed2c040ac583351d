"""Data Docs work with the network off and the checks link to the right page over HTTP (issue 16 point 10).

Real GX renders a small site; a real HTTP server on loopback serves it; every script, style sheet, image and
font a page loads is fetched from that server, and none is outside it."""

from __future__ import annotations

import re
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import duckdb
import pytest

from quality.datadocs import CDN, external_in_css, external_resources, serve
from quality.expectations import Expectation, Suite, run_gate


def _suite(name: str, asset: str, exps: list[Expectation]) -> Suite:
    return Suite(name=name, table=name, asset=tuple(asset.split("/")), description=name,
                 expectations=tuple(exps), path=Path(f"{name}.yaml"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Two suites on one asset, as dim_person carries bridge_person_record's: the other suite sorts first."""
    var = tmp_path_factory.mktemp("docs")
    con = duckdb.connect()
    con.execute("CREATE SCHEMA warehouse; CREATE SCHEMA quality")
    con.execute("CREATE TABLE quality.check_result (asset VARCHAR, check_name VARCHAR, passed BOOLEAN, "
                "evaluated BIGINT, checked_at TIMESTAMPTZ)")
    con.execute("CREATE TABLE warehouse.dim_person AS SELECT i AS k, CASE WHEN i = 3 THEN '7' ELSE '1' END AS gender "
                "FROM range(10) t(i)")
    con.execute("CREATE TABLE warehouse.bridge_person_record AS SELECT i AS k FROM range(5) t(i)")
    suites = [
        _suite("warehouse.bridge_person_record", "warehouse/dim_person",
               [Expectation("expect_column_values_to_not_be_null", {"column": "k"}, "error")]),
        _suite("warehouse.dim_person", "warehouse/dim_person",
               [Expectation("expect_column_values_to_be_in_set", {"column": "gender", "value_set": ["1", "2"]},
                            "error")]),
    ]
    results = run_gate(con, suites, engine="gx", record=False, var_dir=var)
    docs = var / "quality" / "docs"
    server = serve(docs, port=0)
    yield docs, results, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _Loaded(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("href") and ({"stylesheet", "icon"} & set((a.get("rel") or "").split())):
            self.urls.append(a["href"])


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_no_page_or_style_sheet_loads_anything_from_outside_the_site(site):
    docs, _, _ = site
    pages = list(docs.rglob("*.html"))
    assert len(pages) >= 4  # index, two suites, two validation results
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert external_resources(html) == [], page
        assert "great-expectations-web-assets" not in html and "dataContextId" not in html
    for sheet in docs.rglob("*.css"):
        assert external_in_css(sheet.read_text(encoding="utf-8")) == [], sheet


def test_every_script_style_image_and_font_a_page_loads_is_served_by_the_docs_server(site):
    docs, results, base = site
    fetched = set()
    for page in docs.rglob("*.html"):
        url = f"{base}/{page.relative_to(docs).as_posix()}"
        status, body = _get(url)
        assert status == 200
        parser = _Loaded()
        parser.feed(body.decode("utf-8"))
        assert any("bootstrap-4.3.1.min.css" in u for u in parser.urls)  # styled, from the site itself
        assert any("jquery-3.7.1.min.js" in u for u in parser.urls)
        for resource in parser.urls:
            target = urljoin(url, resource)
            assert target.startswith(base), (page.name, resource)
            if target not in fetched:
                assert _get(target)[0] == 200, target
                fetched.add(target)
    fonts = re.findall(r"url\(\.\./webfonts/([^)]+\.woff2)\)", (docs / "static/vendor/fontawesome-6.6.0/css/all.min.css")
                       .read_text(encoding="utf-8"))
    assert fonts
    for font in fonts:
        assert _get(f"{base}/static/vendor/fontawesome-6.6.0/webfonts/{font}")[0] == 200
    assert len(fetched) >= 15


def test_every_cdn_file_the_gx_templates_name_is_vendored():
    import great_expectations

    templates = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
    named = {u for f in templates.rglob("*.j2") for u in re.findall(r"""(?:src|href)=["'](https://[^"']+)""",
                                                                          f.read_text(encoding="utf-8"))}
    loaded = {u for u in named if not u.startswith("https://greatexpectations.io")}
    assert loaded - set(CDN) <= {u for u in loaded if "great-expectations-web-assets" in u}
    vendor = Path(__file__).resolve().parents[1] / "quality" / "datadocs_assets"
    assert all((vendor / f).is_file() for f in CDN.values())


def test_the_check_links_to_its_own_suite_over_http(site, monkeypatch):
    from pipelines.expectations import _metadata

    docs, results, base = site
    monkeypatch.setenv("HUB_DATA_DOCS_URL", base)
    meta = _metadata(results, str(docs / "index.html"), {})  # no sample keys: links only
    own = meta["data_docs"].value
    assert own.startswith(base + "/validations/warehouse/dim_person/")  # not bridge_person_record's page
    other = meta["data_docs warehouse.bridge_person_record"].value
    assert other.startswith(base + "/validations/warehouse/bridge_person_record/")
    status, body = _get(own)
    assert status == 200 and "warehouse.dim_person" in body.decode("utf-8")


def _index_links(docs: Path) -> set[str]:
    index = docs / "index.html"
    # the index's table is data for bootstrap-table: the links are in it as strings
    return set(re.findall(r"validations/[^'\"]+?\.html", index.read_text(encoding="utf-8"))) if index.exists() else set()


def test_checks_render_their_pages_and_the_index_is_rendered_once_after_the_run(tmp_path):
    """A check renders its suite's validation page, offline, without the index; the index, rendered once
    afterwards, links to every validation stored (one per check of the run), offline too."""
    from quality.expectations import build_docs_index

    con = duckdb.connect()
    con.execute("CREATE SCHEMA warehouse; CREATE SCHEMA quality")
    con.execute("CREATE TABLE quality.check_result (asset VARCHAR, check_name VARCHAR, passed BOOLEAN, "
                "evaluated BIGINT, checked_at TIMESTAMPTZ)")
    con.execute("CREATE TABLE warehouse.t1 AS SELECT i AS k FROM range(5) t(i)")
    con.execute("CREATE TABLE warehouse.t2 AS SELECT i AS k FROM range(5) t(i)")
    docs = tmp_path / "quality" / "docs"
    assert build_docs_index(tmp_path / "quality") is None  # nothing stored yet: nothing to list
    pages = []
    for name in ("warehouse.t1", "warehouse.t2"):  # two checks, as two steps of a run
        suite = _suite(name, name.replace(".", "/"),
                       [Expectation("expect_column_values_to_not_be_null", {"column": "k"}, "error")])
        (result,) = run_gate(con, [suite], engine="gx", record=False, var_dir=tmp_path, run_id="run-1",
                             render_index=False)
        assert result.docs_page is not None and result.docs_page.is_file()
        assert external_resources(result.docs_page.read_text(encoding="utf-8")) == []
        pages.append(result.docs_page)
    assert not (docs / "index.html").exists()  # no check rendered it
    index = build_docs_index(tmp_path / "quality")
    assert index == docs / "index.html"
    links = _index_links(docs)
    assert {p.relative_to(docs).as_posix() for p in pages} <= links, links
    assert external_resources(index.read_text(encoding="utf-8")) == []


def test_the_sensor_renders_the_index_of_each_finished_run_once(tmp_path):
    """The data_docs_index sensor, evaluated on a real instance: a finished run's college folder gets its
    index; the cursor moves past the run, so the next tick renders nothing until another run finishes."""
    import dagster as dg

    from pipelines.data_docs import data_docs_index_sensor

    con = duckdb.connect()
    con.execute("CREATE SCHEMA warehouse; CREATE SCHEMA quality")
    con.execute("CREATE TABLE quality.check_result (asset VARCHAR, check_name VARCHAR, passed BOOLEAN, "
                "evaluated BIGINT, checked_at TIMESTAMPTZ)")
    con.execute("CREATE TABLE warehouse.t1 AS SELECT i AS k FROM range(5) t(i)")
    suite = _suite("warehouse.t1", "warehouse/t1",
                   [Expectation("expect_column_values_to_not_be_null", {"column": "k"}, "error")])
    folders = {"A": tmp_path / "a" / "quality", "B": tmp_path / "b" / "quality"}
    for college in folders:
        run_gate(con, [suite], engine="gx", record=False, var_dir=folders[college].parent, render_index=False)

    @dg.op
    def noop() -> None:
        pass

    @dg.job
    def some_job():
        noop()

    sensor = data_docs_index_sensor(lambda run: folders.get(run.tags.get("college")))
    with dg.instance_for_test() as instance:
        some_job.execute_in_process(instance=instance, tags={"college": "A"})
        context = dg.build_sensor_context(instance=instance)
        result = sensor(context)
        assert "rendered" in result.skip_message and str(folders["A"] / "docs" / "index.html") in result.skip_message
        assert (folders["A"] / "docs" / "index.html").exists()
        assert not (folders["B"] / "docs" / "index.html").exists()  # no run of B finished
        cursor = context.cursor
        assert cursor
        again = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
        assert again.skip_message == "no new finished run"
        some_job.execute_in_process(instance=instance, tags={"college": "B"})
        later = dg.build_sensor_context(instance=instance, cursor=cursor)
        result = sensor(later)
        assert (folders["B"] / "docs" / "index.html").exists()
        assert str(folders["A"]) not in result.skip_message  # A's run was already handled
        assert float(later.cursor) > float(cursor)
