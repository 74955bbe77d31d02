"""The documentation section: Markdown files of the repository's docs/ rendered to HTML.

Only names from a strict pattern are looked up, and the resolved file must lie inside the docs
folder, so no request path (`..`, `%2e%2e`, `%2f`, backslashes, absolute paths) can read
anything else. Raw HTML in the Markdown is escaped, not passed through.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.token import Token

import candlecast

# A page or asset name: letters, digits, '-' and '_', optionally one extension. No dots else.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}(\.(md|svg|png))?$")
ASSET_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}


@dataclass(frozen=True)
class Page:
    """One entry of the side menu."""

    slug: str
    title: str
    filename: str


# The menu, in reading order; other .md files in docs/ follow, titled by their first heading.
MENU: tuple[Page, ...] = (
    Page("index", "Overview", "index.md"),
    Page("architecture", "Architecture and data flow", "architecture.md"),
    Page("data", "Data", "data.md"),
    Page("model", "The model", "model.md"),
    Page("api", "API endpoints", "api.md"),
    Page("operations", "Operations", "operations.md"),
    Page("benchmarks", "Benchmarks", "benchmarks.md"),
)


def default_docs_dir() -> Path | None:
    """<repo>/docs beside the source tree (a checkout or editable install), else the copy a
    wheel carries inside the package, else ./docs."""
    package = Path(candlecast.__file__).resolve().parent
    candidates = [package.parent.parent / "docs", package / "docs", Path.cwd() / "docs"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def safe_path(docs_dir: Path, name: str) -> Path | None:
    """The file `name` inside docs_dir, or None if the name is unsafe or the file is absent."""
    if not _NAME.fullmatch(name):
        return None
    root = docs_dir.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path.parent != root or not path.is_file():
        return None
    return path


def _title_of(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("# "):
                    return line[2:].strip()
    except OSError:
        pass
    return path.stem.replace("-", " ").replace("_", " ").capitalize()


def menu(docs_dir: Path | None) -> list[dict[str, Any]]:
    """The side menu: known pages (marked missing when absent), then any other Markdown files."""
    items: list[dict[str, Any]] = []
    known = {page.filename for page in MENU}
    for page in MENU:
        present = docs_dir is not None and safe_path(docs_dir, page.filename) is not None
        items.append({"slug": page.slug, "title": page.title, "present": present})
    if docs_dir is not None and docs_dir.is_dir():
        for path in sorted(docs_dir.glob("*.md")):
            if path.name not in known and _NAME.fullmatch(path.name):
                items.append({"slug": path.stem, "title": _title_of(path), "present": True})
    return items


def _slugify(text: str) -> str:
    slug = re.sub(r"[^\w\s-]", "", text.lower()).strip()
    return re.sub(r"[\s]+", "-", slug)[:80] or "section"


def _rewrite_href(href: str, root: str = "") -> str:
    """Links between docs pages (`api.md#x`) point at their rendered page (`/guide/api#x`);
    site links (`/charts`) stay under the path prefix `root` the service is served at."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", href, re.IGNORECASE) or href.startswith(("//", "#")):
        return href
    if href.startswith("/"):
        return root + href
    target, _, anchor = href.partition("#")
    name = target.removeprefix("./").removeprefix("docs/")
    if name.endswith(".md") and _NAME.fullmatch(name):
        slug = name[:-3]
        return f"{root}/guide/{slug}" + (f"#{anchor}" if anchor else "")
    if _NAME.fullmatch(name):
        return f"{root}/guide/{name}" + (f"#{anchor}" if anchor else "")
    return href


# After these, a long path or URL in inline code may wrap (a narrow table cell, a phone).
_BREAK_AFTER = re.compile(r"(?<=[/?&,=_])")


def _code_inline(
    self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]
) -> str:
    """Inline code, escaped, with <wbr> break chances after / ? & , = _ (copying is unchanged)."""
    token = tokens[idx]
    parts = (escapeHtml(part) for part in _BREAK_AFTER.split(token.content))
    return f"<code{self.renderAttrs(token)}>" + "<wbr>".join(parts) + "</code>"


class Renderer:
    """Markdown to HTML with heading anchors, tables and rewritten links; cached by mtime.

    `root` is the path prefix the service is served under ("" or "/prefix"): every link the
    docs make into the site carries it.
    """

    def __init__(self) -> None:
        self._md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
        self._md.add_render_rule("code_inline", _code_inline)
        self._cache: dict[tuple[Path, str], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def render_text(self, text: str, *, root: str = "") -> dict[str, Any]:
        """{"html": str, "title": str | None, "toc": [{"level", "id", "text"}]}."""
        tokens = self._md.parse(text)
        toc: list[dict[str, Any]] = []
        title: str | None = None
        used: set[str] = set()
        for index, token in enumerate(tokens):
            if token.type == "heading_open":
                inline = tokens[index + 1]
                heading = inline.content
                anchor = base = _slugify(heading)
                suffix = 2
                while anchor in used:
                    anchor, suffix = f"{base}-{suffix}", suffix + 1
                used.add(anchor)
                token.attrSet("id", anchor)
                level = int(token.tag[1])
                if level == 1 and title is None:
                    title = heading
                elif level in (2, 3):
                    toc.append({"level": level, "id": anchor, "text": heading})
            if token.type == "inline" and token.children:
                self._rewrite_links(token.children, root)
            if token.type == "table_open":
                token.attrSet("class", "doc-table")
        html = self._md.renderer.render(tokens, self._md.options, {})
        return {"html": html, "title": title, "toc": toc}

    @staticmethod
    def _rewrite_links(children: list[Token], root: str) -> None:
        for child in children:
            if child.type == "link_open":
                href = str(child.attrGet("href") or "")
                child.attrSet("href", _rewrite_href(href, root))
                if href.startswith(("http://", "https://")):
                    child.attrSet("rel", "noopener")
            elif child.type == "image":
                src = str(child.attrGet("src") or "")
                child.attrSet("src", _rewrite_href(src, root))

    def render_file(self, path: Path, *, root: str = "") -> dict[str, Any]:
        """Renders one file, re-reading it only when its modification time changed."""
        mtime = path.stat().st_mtime
        key = (path, root)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        rendered = self.render_text(path.read_text(encoding="utf-8"), root=root)
        with self._lock:
            self._cache[key] = (mtime, rendered)
        return rendered
