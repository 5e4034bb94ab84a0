"""GX Data Docs work offline: every page loads its scripts, stylesheets and images from the site itself.

A real site is built with `build_site` (GX 1.24 renders it, ~5 s) and read back as a browser would; the
rewrite itself (`make_page_offline`) is also checked on small pages without GX.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from metrify_assets.quality import data_docs
from metrify_assets.quality.data_docs import (
    CDN_FILES,
    GX_WEB_ASSETS,
    LOGO,
    NEWSLETTER_FOOTER,
    SITE_VENDOR_DIR,
    UNUSED_SCRIPTS,
    VENDOR_DIR,
    OfflinePage,
    build_site,
    make_page_offline,
    publish,
)
from metrify_assets.quality.gx import EXPECTATIONS_DIR
from metrify_assets.resources.lake import Lake

REMOTE = ("http://", "https://", "//")
GX_LOGO = f"{GX_WEB_ASSETS}logo-long.png"
GX_DARK_LOGO = f"{GX_WEB_ASSETS}full_logo_dark.png"


class Assets(HTMLParser):
    """What a browser loads from a page: script src, link href (stylesheet, icon), img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("href") if tag == "link" else values.get("src") if tag in ("script", "img") else None
        if url is not None:
            self.urls.append((tag, url))


def assets(page: str) -> list[tuple[str, str]]:
    parser = Assets()
    parser.feed(page)
    parser.close()
    return parser.urls


@dataclass(frozen=True)
class Site:
    root: Path
    pages: dict[str, str]  # path in the site -> HTML as published
    rewrites: list[OfflinePage]  # make_page_offline's result for each page GX rendered


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("data_docs")
    rewrites: list[OfflinePage] = []

    def recording(page: str, root: str) -> OfflinePage:
        rewrites.append(make_page_offline(page, root))
        return rewrites[-1]

    frame = pd.DataFrame({"meter_id": ["a"], "reading_start": [pd.Timestamp("2026-01-01", tz="UTC")]})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data_docs, "make_page_offline", recording)
        outcomes = build_site(
            {"validated_meter_readings": frame}, root, run_names={"validated_meter_readings": "b1"}
        )
    assert outcomes == {"validated_meter_readings": False}  # columns missing: a page with failures
    pages = {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in root.rglob("*.html")}
    yield Site(root, pages, rewrites)


def result_page(site: Site) -> str:
    (name,) = [p for p in site.pages if p.startswith("validations/validated_meter_readings/b1/")]
    return name


def test_the_site_has_pages_at_every_depth(site: Site) -> None:
    assert "index.html" in site.pages
    assert "expectations/validated_meter_readings.html" in site.pages
    assert result_page(site).count("/") == 4  # validations/<suite>/<run>/<time>/<file>
    assert len(site.rewrites) == len(site.pages)


def test_no_page_loads_anything_from_the_internet(site: Site) -> None:
    for name, page in site.pages.items():
        remote = [(tag, url) for tag, url in assets(page) if url.lower().startswith(REMOTE)]
        assert remote == [], name
        assert "https://" not in "".join(re.findall(r"url\([^)]*\)", page)), name  # inline CSS
        assert GX_WEB_ASSETS not in page, name


def test_every_local_script_stylesheet_and_image_is_in_the_site(site: Site) -> None:
    for name, page in site.pages.items():
        urls = assets(page)
        assert sum(tag == "script" for tag, _ in urls) == 6, (
            name
        )  # jQuery, popper, bootstrap, 2 table, datepicker
        assert sum(tag == "link" for tag, _ in urls) == 7, name  # 6 stylesheets and the favicon
        for tag, url in urls:
            path = (site.root / name).parent / url
            assert path.resolve().is_relative_to(site.root.resolve()), (name, url)
            assert path.is_file(), (name, tag, url)


def test_vendored_stylesheets_find_their_fonts(site: Site) -> None:
    """Font Awesome's all.min.css names woff2 first in every @font-face; only the woff2 fonts are vendored."""
    vendor = site.root / SITE_VENDOR_DIR
    for css in vendor.rglob("*.css"):
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", css.read_text(encoding="utf-8")):
            if url.startswith("data:"):
                continue
            font = (css.parent / url).with_suffix(".woff2")
            assert font.is_file(), (css.name, url)
    assert {p.name for p in vendor.rglob("*.woff2")} == {
        "fa-brands-400.woff2",
        "fa-regular-400.woff2",
        "fa-solid-900.woff2",
        "fa-v4compatibility.woff2",
    }


def test_the_vendored_files_are_the_ones_the_map_names() -> None:
    files = {p.relative_to(VENDOR_DIR).as_posix() for p in VENDOR_DIR.rglob("*") if p.is_file()}
    assets_ = {
        f for f in files if not f.endswith(("LICENSE", "LICENSE.txt", "README.md")) and "webfonts/" not in f
    }
    assert assets_ == set(CDN_FILES.values())  # nothing vendored that no page loads
    for package in {f.split("/")[0] for f in files} - {"README.md"}:
        assert {f"{package}/LICENSE", f"{package}/LICENSE.txt"} & files, package
    readme = (VENDOR_DIR / "README.md").read_text(encoding="utf-8")
    for file in files - {"README.md"}:
        assert file.endswith(("LICENSE", "LICENSE.txt")) or f"`{file}`" in readme, file


def test_no_newsletter_tracking_or_gx_tutorials(site: Site) -> None:
    for name, page in site.pages.items():
        lowered = page.lower()
        assert "newsletter" not in lowered and "utm_" not in lowered, name
        assert "ge-cta-footer" not in page.replace("#ge-cta-footer {", ""), name  # GX's tutorials footer
        assert '.ge-walkthrough-modal").modal()' not in page, name
        assert LOGO in page, name


def test_the_pages_still_show_the_validation(site: Site) -> None:
    index = site.pages["index.html"]
    assert result_page(site) in index and "expectations/validated_meter_readings.html" in index
    page = site.pages[result_page(site)]
    assert "Data asset: validated_meter_readings<br>" in page
    assert "Evaluated Expectations" in page and "Unsuccessful Expectations" in page
    assert "expect_column_values_to_be_in_set" in page  # a failed expectation's name
    assert 'class="fas fa-times text-danger"' in page  # Font Awesome icons: the fonts above
    assert (
        "compound columns must be unique together" in site.pages["expectations/validated_meter_readings.html"]
    )


def test_every_cdn_url_gx_uses_is_still_found(site: Site) -> None:
    """If GX changes its pages, this says which URL the rewrite no longer meets or newly leaves remote."""
    found = set().union(*(r.found for r in site.rewrites))
    assert found == set(CDN_FILES) | UNUSED_SCRIPTS | {GX_LOGO, GX_DARK_LOGO, NEWSLETTER_FOOTER}
    for rewrite in site.rewrites:
        assert rewrite.remote == ()
        assert {GX_LOGO, GX_DARK_LOGO, NEWSLETTER_FOOTER} | UNUSED_SCRIPTS <= rewrite.found


def test_no_suite_uses_an_expectation_that_draws_a_vega_chart(site: Site) -> None:
    """The site ships no Vega: only expectations whose renderers build a RenderedGraphContent use it."""
    import great_expectations

    expectations = Path(great_expectations.__file__).parent / "expectations"
    charts = {p.stem for p in expectations.rglob("expect_*.py") if "RenderedGraphContent" in p.read_text()}
    assert "expect_column_kl_divergence_to_be_less_than" in charts  # the scan finds them
    used = {
        e["type"]
        for suite in EXPECTATIONS_DIR.glob("*.json")
        for e in json.loads(suite.read_text())["expectations"]
    }
    assert used and not used & charts
    assert all("vegaEmbed" not in page for page in site.pages.values())


@pytest.mark.s3
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_publish_writes_only_what_the_lake_does_not_hold(
    kind: str, site: Site, tmp_path: Path, s3_endpoint: str
) -> None:
    lake = Lake(f"s3://metrify-lake/{tmp_path.name}" if kind == "s3" else str(tmp_path / "lake"))
    directory = tmp_path / "site"
    shutil.copytree(site.root, directory)
    files = {
        f"reports/data_docs/{p.relative_to(directory).as_posix()}": p
        for p in directory.rglob("*")
        if p.is_file()
    }

    first = publish(lake, directory)
    assert sorted(first.written) == sorted(files) and first.skipped == []
    assert first.bytes_written == sum(p.stat().st_size for p in files.values()) and first.bytes_skipped == 0
    assert first.written[-1] == "reports/data_docs/index.html"  # never links to a page not yet there
    assert all(lake.get(key) == path.read_bytes() for key, path in files.items())

    again = publish(lake, directory)  # the site unchanged: nothing written
    assert again.written == [] and sorted(again.skipped) == sorted(files)
    assert again.bytes_written == 0 and again.bytes_skipped == first.bytes_written

    changed = f"reports/data_docs/{result_page(site)}"
    page = files[changed].read_text(encoding="utf-8")
    files[changed].write_text(page.replace("Failed", "FAILED", 1), encoding="utf-8")  # the same size
    new = "reports/data_docs/validations/validated_meter_readings/b2/20260102T000000.000000Z/x.html"
    files[new] = directory / new.removeprefix("reports/data_docs/")
    files[new].parent.mkdir(parents=True)
    files[new].write_text("<html>b2</html>", encoding="utf-8")
    replaced = "reports/data_docs/expectations/validated_meter_readings.html"
    lake.put(replaced, b"changed in the lake since")  # what the lake holds counts, not what was written

    third = publish(lake, directory)
    assert sorted(third.written) == sorted([changed, new, replaced])
    assert sorted(third.skipped) == sorted(set(files) - {changed, new, replaced})
    assert third.bytes_written == sum(files[key].stat().st_size for key in (changed, new, replaced))
    assert all(lake.get(key) == files[key].read_bytes() for key in third.written)
    assert "FAILED" in lake.get(changed).decode()


PAGE = """<html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<style>.navbar-brand a { background: url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png') 0 0 no-repeat; }</style>
<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>
<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js" integrity="sha384-x" crossorigin="anonymous"></script>
<link rel="shortcut icon" href="../../../static/images/favicon.ico" type="image/x-icon"/>
</head><body>
<a href="../../../../index.html"><img class="NO-CACHE" src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1" alt="Great Expectations"/></a>
<p>Results &amp; more</p>
<footer>
  <p>Stay current on everything GX with our newsletter <a href="https://greatexpectations.io/newsletter?utm_source=datadocs">Subscribe</a></p>
</footer>
</body></html>"""


def test_make_page_offline_rewrites_a_page_at_its_depth() -> None:
    page = make_page_offline(PAGE, "../../../../")
    vendor = "../../../../static/vendor/"
    assert page.remote == ()
    assert f'<link rel="stylesheet" href="{vendor}bootstrap-4.3.1/bootstrap.min.css">' in page.html
    assert f'<script src="{vendor}popper.js-1.12.9/popper.min.js"></script>' in page.html  # no integrity
    assert "vega" not in page.html and "newsletter" not in page.html and "<footer" not in page.html
    assert "background: none 0 0 no-repeat;" in page.html
    assert (
        f'<a href="../../../../index.html"><span class="h4 m-0 align-middle">{LOGO}</span></a>' in page.html
    )
    assert 'href="../../../../static/images/favicon.ico"' in page.html
    assert "<p>Results &amp; more</p>" in page.html  # the rest as it was
    assert page.found == {
        "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css",
        "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js",
        "https://cdn.jsdelivr.net/npm/vega@5",
        GX_LOGO,
        GX_DARK_LOGO,
        NEWSLETTER_FOOTER,
    }
    again = make_page_offline(page.html, "../../../../")
    assert again.html == page.html and again.found == set() and again.remote == ()


def test_make_page_offline_reports_what_it_does_not_know() -> None:
    page = make_page_offline(
        '<script src="https://cdn.example.com/new.js"></script>'
        '<link rel="stylesheet" href="//cdn.example.com/new.css">'
        '<img src="http://example.com/x.png"><style>p { background: url(https://example.com/b.png) }</style>'
        '<footer><p>Powered by us</p></footer><script src="static/local.js"></script>',
        "",
    )
    assert page.remote == (
        "https://cdn.example.com/new.js",
        "//cdn.example.com/new.css",
        "http://example.com/x.png",
        "https://example.com/b.png",
    )
    assert page.found == set() and "<footer><p>Powered by us</p></footer>" in page.html
