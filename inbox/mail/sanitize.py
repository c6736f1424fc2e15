"""Make HTML from mail safe to show, and turn HTML-only mail into plain text."""

from __future__ import annotations

import html as html_lib
import logging
import re
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import unquote

import nh3

logger = logging.getLogger(__name__)

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div",
        "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li",
        "ol", "p", "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup",
        "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
"""Formatting tags kept. Any other tag is unwrapped to its text."""

REMOVED_WITH_CONTENT = frozenset({"script", "style", "title", "template", "noscript"})
"""Tags removed together with their content, because their content is not readable text."""

ALLOWED_ATTRIBUTES = {
    "*": {"dir", "lang", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "ol": {"start"},
}
"""Attributes kept per tag. No style, class or id, so mail CSS cannot restyle the page."""

LINK_SCHEMES = ("http:", "https:", "mailto:")
"""Schemes a link may keep. Relative links would point into our application, so they go."""

LINK_REL = "noopener noreferrer nofollow"
"""The rel value set on every kept link."""

# nh3 serialises attribute values in double quotes with `"`, `<` and `>` escaped, so an
# attribute value never contains a bare `"` or `>` in its output.
_IMG_TAG = re.compile(r"<img\b([^>]*)>")
_ATTRIBUTE = re.compile(r'([a-z-]+)="([^"]*)"')


def _filter_attribute(
    cid_url: Callable[[str], str] | None,
) -> Callable[[str, str, str], str | None]:
    """Build the nh3 attribute filter that decides on every link and image URL."""

    def filter_attribute(tag: str, attribute: str, value: str) -> str | None:
        if tag == "a" and attribute == "href":
            return value if value.strip().lower().startswith(LINK_SCHEMES) else None
        if tag != "img" or attribute != "src":
            return value

        # Only images carried by the message itself are shown: a remote image is a
        # tracking beacon, and a data: URL can hide content the preview does not expect.
        if cid_url is None or not value.strip().lower().startswith("cid:"):
            return None
        content_id = unquote(value.strip()[4:]).strip("<>")
        return cid_url(content_id) if content_id else None

    return filter_attribute


def _replace_unloaded_image(match: re.Match[str]) -> str:
    """Replace an image whose src was removed by its alt text, and keep the others."""
    attributes = dict(_ATTRIBUTE.findall(match.group(1)))
    if "src" in attributes:
        return match.group(0)
    alt = html_lib.unescape(attributes.get("alt", "")).strip()
    return html_lib.escape(f"[{alt}]", quote=False) if alt else ""


def sanitize_html(html: str, *, cid_url: Callable[[str], str] | None = None) -> str:
    """Return HTML from a mail with scripts, styles, event handlers and remote content removed.

    :param cid_url: maps a Content-ID to the URL that serves that part of the message.
        Without it, cid: images are replaced by their alt text too.
    """
    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(REMOVED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_filter_attribute(cid_url),
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel=LINK_REL,
        strip_comments=True,
    )
    return _IMG_TAG.sub(_replace_unloaded_image, cleaned)


_BLOCK_TAGS = frozenset(
    {
        "address", "article", "blockquote", "br", "div", "dl", "dt", "dd", "footer", "h1",
        "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre", "section",
        "table", "tr", "ul",
    }
)  # fmt: skip
_SKIPPED_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript"})


class _TextExtractor(HTMLParser):
    """HTML parser that collects readable text with line breaks at block boundaries."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skip_depth = 0
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Start a new line at block tags and note skipped or preformatted regions."""
        if tag in _SKIPPED_TAGS:
            self.skip_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
        if tag in _BLOCK_TAGS:
            self.chunks.append("\n")
        if tag == "li":
            self.chunks.append("- ")
        elif tag in ("td", "th"):
            self.chunks.append(" ")

    def handle_endtag(self, tag: str) -> None:
        """Close skipped or preformatted regions and end block lines."""
        if tag in _SKIPPED_TAGS and self.skip_depth:
            self.skip_depth -= 1
        elif tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
        if tag in _BLOCK_TAGS and tag not in ("br", "li"):
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        """Keep text outside skipped tags, collapsing white space outside <pre>."""
        if self.skip_depth:
            return
        if self.pre_depth:
            self.chunks.append(data)
            return
        self.chunks.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Convert HTML to plain text with paragraphs and list items on their own lines."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()

    lines = [line.strip() for line in "".join(extractor.chunks).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
