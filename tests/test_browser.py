"""End to end in headless Chromium: mail polled from Dovecot, sign-in, queue, ticket, retype.

The app runs in a werkzeug server thread on 127.0.0.1 with CSRF protection on, as in
production. Playwright drives Debian's Chromium; it never downloads a browser of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy import select
from werkzeug.serving import BaseWSGIServer, make_server

from inbox.extensions import db
from inbox.models.ticket import Ticket
from inbox.models.user import Role
from inbox.services.intake import poll_mailboxes
from inbox.services.users import create_user
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.factories import make_mail
from tests.servers import DEFAULT_PASSWORD, DEFAULT_USER, Dovecot

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium, installed by scripts/install-test-deps.sh."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
"""Flags for running as root without a sandbox and sending no traffic beyond the app under test."""

TIMEOUT_MS = 15_000
"""Playwright's wait per page or element: half its 30 s default, so a broken page fails sooner."""

RECEIVED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
"""INTERNALDATE of the test mails: a Monday, so the month rule lands on Wednesday 2 December."""


@dataclass
class LiveServer:
    """A running app, the URL it listens on and its tickets' references in creation order."""

    app: Flask
    url: str
    references: list[str]


def require_chromium() -> None:
    """Fail the test with the fix when Debian's Chromium is missing."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `sudo bash scripts/install-test-deps.sh`, "
            "which installs Debian's chromium package (never `playwright install`)",
            pytrace=False,
        )


@pytest.fixture
def live_server(make_app: Any, mailbox: Dovecot) -> Iterator[LiveServer]:
    """Poll two access requests from Dovecot, then serve the app on a free loopback port."""
    app = make_app(
        WTF_CSRF_ENABLED=True,
        IMAP_HOST="127.0.0.1",
        IMAP_PORT=mailbox.port,
        IMAP_SECURITY="none",
        IMAP_USER=DEFAULT_USER,
        IMAP_PASSWORD=DEFAULT_PASSWORD,
        IMAP_TIMEOUT_SECONDS=10.0,
    )
    for sender in ("Jan Jansen <jan@example.net>", "Anna Smit <anna@example.net>"):
        mail = make_mail(
            subject="Request for access",
            body="Under article 15 GDPR I ask for a copy of all personal data you hold about me.",
            sender=sender,
        )
        mailbox.append("INBOX", mail, msg_time=RECEIVED)
    with app.app_context():
        create_user(
            db.session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN, actor="test"
        )
        db.session.commit()
        results, errors = poll_mailboxes(db.session, app.config)
        references = list(db.session.scalars(select(Ticket.reference).order_by(Ticket.id)))
        db.session.remove()
    assert errors == []
    assert len(references) == 2

    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield LiveServer(app, f"http://127.0.0.1:{server.server_port}", references)
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Launch Debian's headless Chromium through Playwright."""
    require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_context(browser: Browser, locale: str) -> BrowserContext:
    """Open a fresh browser profile whose Accept-Language is ``locale``."""
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    return context


def sign_in(page: Page, server: LiveServer, sign_in_label: str) -> None:
    """Sign in as the admin through the login form, which carries its CSRF token."""
    page.goto(f"{server.url}/login")
    page.locator("#email").fill(ADMIN_EMAIL)
    page.locator("#password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name=sign_in_label).click()
    page.wait_for_url(f"{server.url}/")


def retype_as_breach(page: Page, reference: str, change_label: str) -> None:
    """Open a ticket from the queue and change its type to breach."""
    page.get_by_role("link", name=reference, exact=True).click()
    page.wait_for_url(f"**/tickets/{reference}")
    page.locator("select#type").select_option("breach")
    page.get_by_role("button", name=change_label).click()
    page.wait_for_url(f"**/tickets/{reference}")


def test_browser_retype_ticket_english_and_dutch(
    live_server: LiveServer, browser: Browser, tmp_path: Path
) -> None:
    first, second = live_server.references
    screenshots = tmp_path / "screenshots"
    screenshots.mkdir()

    # English: the browser requests en-US.
    context = open_context(browser, "en-US")
    page = context.new_page()
    sign_in(page, live_server, "Sign in")
    expect(page.locator("h1")).to_have_text("Queue")
    expect(page.get_by_role("link", name=first, exact=True)).to_be_visible()
    retype_as_breach(page, first, "Change type")

    expect(page.locator(".flash.success")).to_have_text(
        "Type changed; the due date was recomputed."
    )
    expect(page.locator("#ticket-type")).to_have_text("Data breach")
    # 72 hours after receipt; the access request was due on 2 December.
    expect(page.locator("#ticket-due")).to_contain_text("5 Nov 2026")
    audit = page.locator("table.audit")
    expect(audit).to_contain_text("Type changed")
    expect(audit).to_contain_text("Access request → Data breach")
    page.screenshot(path=str(screenshots / "ticket-en.png"), full_page=True)

    # The language switch turns the same page Dutch for the rest of the session.
    page.locator("button[data-lang=nl]").click()
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    expect(page.locator("#ticket-type")).to_have_text("Datalek")
    expect(page.locator("main")).to_contain_text("Uiterste datum")
    page.get_by_role("link", name="Wachtrij").click()
    expect(page.locator("h1")).to_have_text("Wachtrij")
    page.locator("button[data-lang=en]").click()
    expect(page.locator("h1")).to_have_text("Queue")
    context.close()

    # Dutch: a fresh profile whose browser requests nl-NL, with no switch clicked.
    context = open_context(browser, "nl-NL")
    page = context.new_page()
    sign_in(page, live_server, "Inloggen")
    expect(page.locator("h1")).to_have_text("Wachtrij")
    expect(page.locator("table.queue")).to_contain_text("Inzageverzoek")
    retype_as_breach(page, second, "Soort wijzigen")

    expect(page.locator(".flash.success")).to_have_text(
        "Soort gewijzigd. De uiterste datum is opnieuw berekend."
    )
    expect(page.locator("#ticket-type")).to_have_text("Datalek")
    expect(page.locator("#ticket-due")).to_contain_text("5 nov 2026")
    audit = page.locator("table.audit")
    expect(audit).to_contain_text("Soort gewijzigd")
    expect(audit).to_contain_text("Inzageverzoek → Datalek")
    page.screenshot(path=str(screenshots / "ticket-nl.png"), full_page=True)
    context.close()


def add_long_ticket(server: LiveServer, tmp_path: Path) -> str:
    """Import a mail with a 48 KB subject and add a note, whose audit details hold a hash."""
    from inbox.models.types import utcnow
    from inbox.services.intake import import_path
    from inbox.services.workflows import add_note, instance_of

    folder = tmp_path / "long"
    folder.mkdir()
    subject = "Request for access " + "verylongsubjectwithoutspaces" * 1700
    mail = make_mail(
        subject=subject,
        body="Under article 15 GDPR I ask for a copy of all personal data you hold about me.",
        sender="<>",
    )
    (folder / "long.eml").write_bytes(mail)
    with server.app.app_context():
        (reference,) = import_path(db.session, folder, server.app.config, utcnow()).references
        ticket = db.session.scalars(select(Ticket).where(Ticket.reference == reference)).one()
        instance = instance_of(db.session, ticket)
        assert instance is not None
        add_note(db.session, instance.steps[0], ADMIN_EMAIL, "Checked the CRM " + "x" * 300)
        db.session.commit()
        db.session.remove()
    return reference


def test_browser_layout_fits_laptop_window(
    live_server: LiveServer, browser: Browser, tmp_path: Path
) -> None:
    reference = add_long_ticket(live_server, tmp_path)
    context = browser.new_context(locale="en-GB", viewport={"width": 1366, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, live_server, "Sign in")
    page.screenshot(path=str(tmp_path / "queue.png"), full_page=True)

    first_link = page.get_by_role("link", name=live_server.references[0], exact=True)
    link_box = first_link.bounding_box()
    font_size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    page.goto(f"{live_server.url}/tickets/{reference}")
    page.screenshot(path=str(tmp_path / "ticket-long.png"), full_page=True)
    page_width = page.evaluate("document.documentElement.scrollWidth")
    heading_height = page.locator("h1").bounding_box()

    assert link_box is not None
    assert link_box["height"] < 2 * font_size
    assert page_width <= 1366
    assert heading_height is not None
    assert heading_height["height"] < 200
    expect(page.locator("#ticket-language")).not_to_have_text("und")
    context.close()
