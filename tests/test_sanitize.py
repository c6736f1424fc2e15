"""Tests for inbox.mail.sanitize: HTML from mail made safe, and HTML turned into text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inbox.mail.parse import parse_message
from inbox.mail.sanitize import html_to_text, sanitize_html

MAIL_DIR = Path(__file__).parent / "data" / "mail"

HOSTILE_HTML = (
    '<p onclick="steal()" style="position:fixed">Hallo <b>team</b></p>'
    "<script>alert('x')</script><style>p{color:red}</style>"
    '<img src="https://tracker.example.com/open.gif" width="1" height="1">'
    '<img src="http://images.example.com/logo.png" alt="Company logo">'
    '<img src="x" onerror="alert(1)">'
    '<img src="data:image/png;base64,iVBORw0KGgo=" alt="embedded">'
    '<img src="cid:sig@example.com" alt="Signature">'
    '<a href="javascript:alert(1)">js</a>'
    '<a href="JaVaScRiPt&#58;alert(1)">encoded js</a>'
    '<a href="https://example.com/privacy" onmouseover="x()">policy</a>'
    '<a href="mailto:dpo@example.com">dpo</a>'
    '<a href="/admin/delete">relative</a>'
    '<iframe src="https://evil.example.com/"></iframe>'
    '<form action="https://evil.example.com/"><input name="pw"><button>Go</button></form>'
    '<object data="x.swf"></object><embed src="y.swf">'
    "<svg><script>alert(2)</script></svg>"
    "<math><mtext><img src=x onerror=alert(3)></mtext></math>"
)


def cid_url(content_id: str) -> str:
    """Map a Content-ID to the URL that the web view would serve it from."""
    return f"/messages/7/parts/{content_id}"


@pytest.fixture
def cleaned() -> str:
    """Return the hostile sample after sanitising with a cid: mapper."""
    return sanitize_html(HOSTILE_HTML, cid_url=cid_url)


@pytest.mark.parametrize(
    "forbidden",
    ["<script", "<style", "<iframe", "<form", "<input", "<object", "<embed", "javascript:"],
)
def test_sanitize_html_removes_forbidden(cleaned: str, forbidden: str) -> None:
    assert forbidden not in cleaned.lower()


def test_sanitize_html_no_event_handlers(cleaned: str) -> None:
    assert re.search(r"\son[a-z]+\s*=", cleaned, re.IGNORECASE) is None


def test_sanitize_html_no_style_attribute(cleaned: str) -> None:
    assert "style=" not in cleaned


def test_sanitize_html_no_remote_src(cleaned: str) -> None:
    assert re.search(r"src=\"(?:https?:|data:|//)", cleaned) is None


def test_sanitize_html_remote_image_alt(cleaned: str) -> None:
    assert "[Company logo]" in cleaned
    assert "tracker.example.com" not in cleaned


def test_sanitize_html_data_image_dropped(cleaned: str) -> None:
    assert "base64" not in cleaned


def test_sanitize_html_cid_image_rewritten(cleaned: str) -> None:
    assert '<img src="/messages/7/parts/sig@example.com" alt="Signature">' in cleaned


def test_sanitize_html_cid_without_mapper() -> None:
    cleaned = sanitize_html('<img src="cid:sig@example.com" alt="Signature">')

    assert cleaned == "[Signature]"


def test_sanitize_html_link_rel(cleaned: str) -> None:
    expected = '<a href="https://example.com/privacy" rel="noopener noreferrer nofollow">policy</a>'
    assert expected in cleaned


def test_sanitize_html_mailto_kept(cleaned: str) -> None:
    assert 'href="mailto:dpo@example.com"' in cleaned


def test_sanitize_html_relative_link_dropped(cleaned: str) -> None:
    assert "/admin/delete" not in cleaned


def test_sanitize_html_keeps_formatting(cleaned: str) -> None:
    assert "<p>Hallo <b>team</b></p>" in cleaned


def test_sanitize_html_alt_text_escaped() -> None:
    cleaned = sanitize_html('<img src="https://x.example/a.png" alt="<b>&amp; more">')

    assert cleaned == "[&lt;b&gt;&amp; more]"


def test_sanitize_html_hostile_eml() -> None:
    parsed = parse_message((MAIL_DIR / "html_hostile.eml").read_bytes())
    assert parsed.html is not None

    cleaned = sanitize_html(parsed.html, cid_url=cid_url)

    assert "<script" not in cleaned
    assert "onerror" not in cleaned
    assert "<iframe" not in cleaned
    assert "<form" not in cleaned
    assert "javascript:" not in cleaned
    assert "tracker.example.com" not in cleaned
    assert 'src="/messages/7/parts/logo@example.com"' in cleaned
    assert "Ik wil mijn gegevens <b>inzien</b>." in cleaned


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("Line<br>next", "Line\nnext"),
        ("<ul><li>a</li><li>b</li></ul>", "- a\n- b"),
        ("<style>p{}</style><script>x()</script>Text", "Text"),
        ("<p>caf&eacute; &amp; co</p>", "café & co"),
        ("<p>  many   spaces\n here </p>", "many spaces here"),
        ("", ""),
    ],
)
def test_html_to_text_table(html: str, expected: str) -> None:
    assert html_to_text(html) == expected
