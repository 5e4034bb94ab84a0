"""GX Data Docs for reviewers: validate frames in a fresh ephemeral context and build a static site.

Built by the report asset, not per batch: with a site, a checkpoint run costs ~0.45 s more than the
validation itself (~0.02 s for a small batch), and the index grows with every result kept. The
ephemeral context holds only this build's results, so the site shows the latest validation of each
suite. The site is written to a local folder, then copied to the lake under `reports/data_docs/`, each
file only where the lake does not hold its bytes already (`publish`).

The site works offline: GX's pages load bootstrap, jQuery, Font Awesome and friends from CDNs and its
logo from GX's S3 bucket, which a reviewer on a utility's closed network cannot reach (the pages
showed as unstyled HTML). `make_page_offline` points every page at the copies vendored in
`data_docs_assets/` (its README names each npm package, version and checksum), which the build copies
into the site under `static/vendor/`, and takes out GX's newsletter footer and remote logo.
"""

from __future__ import annotations

import html
import logging
import mimetypes
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from metrify_assets.quality.gx import EXPECTATIONS_DIR, load_suite
from metrify_assets.resources.lake import Lake

DATA_DOCS_PREFIX = "reports/data_docs"
SITE_NAME = "metrify"

logger = logging.getLogger(__name__)

VENDOR_DIR = Path(__file__).with_name("data_docs_assets")
SITE_VENDOR_DIR = "static/vendor"  # where the vendored files go in the site

# Every CDN file GX 1.24's pages load -> its vendored copy (a path under VENDOR_DIR and under the site's
# static/vendor/). Where a page asks for a non-minified file, the minified one of the same version
# stands in. A test builds a site and checks that each of these URLs is still found.
CDN_FILES: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table-1.19.1/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table-1.19.1/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table-1.19.1/bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table-1.19.0/bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table-1.19.0/bootstrap-table-filter-control.min.css"
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js-1.12.9/popper.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "fontawesome-free-6.6.0/css/all.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "bootstrap-dark-1.1.0/bootstrap-prefers-dark.min.css"
    ),
}
# Vega draws the charts of expect_column_kl_divergence_to_be_less_than and
# expect_column_distinct_values_to_be_in_set only; no suite has either (a test checks), so the scripts
# are dropped rather than vendored.
UNUSED_SCRIPTS = frozenset(
    {
        "https://cdn.jsdelivr.net/npm/vega@5",
        "https://cdn.jsdelivr.net/npm/vega-lite@5",
        "https://cdn.jsdelivr.net/npm/vega-embed@6",
    }
)
# GX's logo (with the data context id in its query) and, in dark mode, a CSS background logo.
GX_WEB_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
LOGO = "Metrify Data Docs"  # the navbar's text in place of GX's remote logo
FAVICON = "static/images/favicon.ico"  # GX copies it into the site
NEWSLETTER_FOOTER = "newsletter footer"  # in OfflinePage.found when a page's footer was removed
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(?P<url>[^'")\s]+)\1\s*\)""")


def build_site(
    frames: Mapping[str, pd.DataFrame],
    directory: Path,
    suites_dir: Path | None = None,
    run_names: Mapping[str, str] | None = None,
) -> dict[str, bool]:
    """Validate each frame against the suite of the same name and build the site into `directory`.

    Returns each suite's success. Each frame is a data asset of its suite's name (the result's file
    name) and its validation is named by `run_names` (the report's: the batch id), so a result page
    says which batch it validated (GX's default run name is `__none__`). GX 1.24 leaves a dataframe's
    asset name out of the batch spec that a result page's "Data asset" line reads (it showed None), so
    the stored result gets it from the batch definition before the one build renders every page:
    the suites', the results' and the index.
    """
    import great_expectations as gx  # on use: see quality/gx.py
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        SITE_NAME,
        {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(directory)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            # Not GX's tutorial call-to-action footer and walkthrough modal on every page. A SiteBuilder
            # argument that GX's (self-declared incomplete) TypedDict of a site config leaves out.
            "show_how_to_buttons": False,  # type: ignore[typeddict-unknown-key]
        },
    )
    source = context.data_sources.add_pandas("metrify")
    outcomes: dict[str, bool] = {}
    for name, frame in frames.items():
        batch_definition = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(
            "whole_frame"
        )
        suite = context.suites.add(load_suite(name, suites_dir or EXPECTATIONS_DIR))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"report_{name}", data=batch_definition, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(name=f"report_{name}", validation_definitions=[definition])
        )
        run_id = RunIdentifier(run_name=(run_names or {}).get(name))
        result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
        for key, validation in result.run_results.items():
            spec = validation.meta.get("batch_spec")
            if spec is not None:
                spec["data_asset_name"] = validation.asset_name
            context.validation_results_store.set(key, validation)
        outcomes[name] = bool(result.success)
    context.build_data_docs(site_names=[SITE_NAME])
    remote = make_site_offline(directory)
    if remote:  # GX changed its pages (a test fails too): the site still builds, with these remote
        logger.warning("Data Docs pages still load from the internet: %s", ", ".join(sorted(remote)))
    return outcomes


@dataclass(frozen=True)
class OfflinePage:
    """A page rewritten by `make_page_offline`."""

    html: str
    found: frozenset[str]  # what was replaced: CDN URLs, GX asset URLs (without query), NEWSLETTER_FOOTER
    remote: tuple[str, ...]  # http(s) scripts, stylesheets, images, CSS url()s left as they were


def make_page_offline(page: str, root: str) -> OfflinePage:
    """Point a Data Docs page at the vendored assets and take out GX's remote logo and newsletter.

    `root` is the relative path from the page to the site's root ("" for index.html, "../" for
    expectations/x.html). Each script or stylesheet of CDN_FILES loads from `root` + static/vendor/
    (its integrity and crossorigin attributes go: a browser refuses a crossorigin script from a
    file:// page); the scripts of UNUSED_SCRIPTS go; GX's logo becomes text, its dark-mode CSS
    background logo `none`; the footer that says "newsletter" goes; the favicon link gets the page's
    depth. Any other http(s) script, stylesheet, image or CSS url() is left and listed in `remote`.
    """
    rewriter = _PageRewriter(page, root)
    rewriter.feed(page)
    rewriter.close()
    rewritten = page
    for start, end, text in sorted(rewriter.edits, reverse=True):
        rewritten = rewritten[:start] + text + rewritten[end:]
    return OfflinePage(rewritten, frozenset(rewriter.found), tuple(rewriter.remote))


def _is_remote(url: str) -> bool:
    return url.lower().startswith(("http://", "https://", "//"))


def _start_tag(tag: str, attrs: list[tuple[str, str | None]]) -> str:
    parts = [tag, *(name if value is None else f'{name}="{html.escape(value)}"' for name, value in attrs)]
    return f"<{' '.join(parts)}>"


class _PageRewriter(HTMLParser):
    """Collects `make_page_offline`'s edits as (start, end, replacement) offsets into the page."""

    def __init__(self, page: str, root: str) -> None:
        super().__init__(convert_charrefs=False)  # data as written, so offsets stay exact
        self.page = page
        self.root = root
        self.vendor = f"{root}{SITE_VENDOR_DIR}/"
        self.line_starts = [0, *(i + 1 for i, char in enumerate(page) if char == "\n")]
        self.edits: list[tuple[int, int, str]] = []
        self.found: set[str] = set()
        self.remote: list[str] = []
        self.dropping: int | None = None  # start of an unused script element
        self.footer: tuple[int, list[str]] | None = None  # start of a footer, its text and links
        self.in_style = False

    def position(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        start = self.position()
        end = start + len(self.get_starttag_text() or "")
        values = dict(attrs)
        url = values.get("src") if tag in ("script", "img") else values.get("href") if tag == "link" else None
        if self.footer is not None:
            self.footer[1].extend(value for _, value in attrs if value)
        if tag == "style":
            self.in_style = True
        elif tag == "footer":
            self.footer = (start, [])
        elif url is None:
            pass
        elif tag in ("script", "link") and url in CDN_FILES:
            self.retarget(start, end, tag, attrs, self.vendor + CDN_FILES[url])
            self.found.add(url)
        elif tag == "script" and url in UNUSED_SCRIPTS:
            self.dropping = start
            self.found.add(url)
        elif tag == "link" and url.endswith(FAVICON) and url.removeprefix("./") != self.root + FAVICON:
            # GX 1.24 puts a result page's favicon one folder too high (its link was broken).
            self.retarget(start, end, tag, attrs, self.root + FAVICON)
        elif tag == "img" and url.startswith(GX_WEB_ASSETS):
            self.edits.append((start, end, f'<span class="h4 m-0 align-middle">{LOGO}</span>'))
            self.found.add(url.partition("?")[0])
        elif _is_remote(url):
            self.remote.append(url)

    def retarget(self, start: int, end: int, tag: str, attrs: list[tuple[str, str | None]], url: str) -> None:
        """Replace a start tag by one whose src or href is `url`, without integrity or crossorigin."""
        key = "src" if tag in ("script", "img") else "href"
        kept = [(n, url if n == key else v) for n, v in attrs if n not in ("integrity", "crossorigin")]
        self.edits.append((start, end, _start_tag(tag, kept)))

    def handle_endtag(self, tag: str) -> None:
        end = self.page.index(">", self.position()) + 1
        if tag == "script" and self.dropping is not None:
            self.edits.append((self.dropping, end, ""))
            self.dropping = None
        elif tag == "style":
            self.in_style = False
        elif tag == "footer" and self.footer is not None:
            start, content = self.footer
            self.footer = None
            if "newsletter" in " ".join(content).lower():
                self.edits.append((start, end, ""))
                self.found.add(NEWSLETTER_FOOTER)

    def handle_data(self, data: str) -> None:
        if self.footer is not None:
            self.footer[1].append(data)
        if not self.in_style:
            return
        start = self.position()
        for match in _CSS_URL.finditer(data):
            url = match["url"]
            if url.startswith(GX_WEB_ASSETS):
                self.edits.append((start + match.start(), start + match.end(), "none"))
                self.found.add(url.partition("?")[0])
            elif _is_remote(url):
                self.remote.append(url)


def make_site_offline(directory: Path) -> list[str]:
    """Copy the vendored assets into the built site and rewrite each page with `make_page_offline`.

    Returns the remote URLs the pages still load (none with GX 1.24).
    """
    shutil.copytree(VENDOR_DIR, directory / SITE_VENDOR_DIR, dirs_exist_ok=True)
    remote: list[str] = []
    for path in sorted(directory.rglob("*.html")):
        relative = path.relative_to(directory)
        page = make_page_offline(path.read_text(encoding="utf-8"), "../" * (len(relative.parts) - 1))
        path.write_text(page.html, encoding="utf-8")
        remote.extend(f"{url} ({relative.as_posix()})" for url in page.remote)
    return remote


@dataclass(frozen=True)
class Published:
    """What `publish` did: the keys it wrote (new or changed) and those it skipped, with their bytes."""

    written: list[str]
    skipped: list[str]  # the lake held these bytes under the key already
    bytes_written: int
    bytes_skipped: int


def publish(lake: Lake, directory: Path, prefix: str = DATA_DOCS_PREFIX) -> Published:
    """Copy the built site to the lake under `prefix`, each file only where the lake does not hold its
    bytes under that key already (`Lake.holding`: a new or changed file is always written).

    A run writes what changed: the validation result pages (a new key per run: GX names the folder by
    the run's time) and the index, not the vendored assets, GX's static files and the suites' pages,
    which stay the same. The index goes last, so it never links to a page not yet in the lake.
    """
    paths = sorted(
        (p for p in directory.rglob("*") if p.is_file()),
        key=lambda p: (p.name == "index.html" and p.parent == directory, p),
    )
    files = {f"{prefix}/{p.relative_to(directory).as_posix()}": p.read_bytes() for p in paths}
    held = lake.holding(files)
    written = [key for key in files if key not in held]
    for key in written:
        lake.put(key, files[key], content_type=mimetypes.guess_type(key)[0] or "application/octet-stream")
    skipped = [key for key in files if key in held]
    return Published(
        written,
        skipped,
        bytes_written=sum(len(files[key]) for key in written),
        bytes_skipped=sum(len(files[key]) for key in skipped),
    )
