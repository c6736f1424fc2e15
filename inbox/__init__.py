"""privacy-inbox: a helpdesk for privacy teams, built as a Flask application."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, current_app, has_request_context, request, session
from flask_login import current_user
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from inbox.config import environ, load_settings, redact_url, validate_settings
from inbox.errors import ConfigError
from inbox.extensions import babel, csrf, db, login_manager, migrate
from inbox.services.intake import use_sqlite_wal
from inbox.workflow import check_shipped_workflows

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The source checkout: templates/, static/ and workflows/ sit beside the package."""

LANGUAGES = ("en", "nl")
"""Languages of the interface, in the order of the switch on every page."""


FORMAT_LOCALES = {"en": "en_GB"}
"""Locale used for a language's dates and numbers: English screens show "7 Dec 2026, 23:59"."""


def select_locale() -> str | None:
    """Pick the interface locale: the switch, then the user's setting, then the browser.

    English maps to en_GB, so dates read day-month-year with a 24-hour clock; ``<html lang>``
    and the language switch use the language part only.
    """
    language: str | None = None
    if has_request_context():
        language = session.get("lang")
        if language not in LANGUAGES and getattr(current_user, "is_authenticated", False):
            language = current_user.locale
        if language not in LANGUAGES:
            language = request.accept_languages.best_match(LANGUAGES)
    if language not in LANGUAGES:
        language = current_app.config["BABEL_DEFAULT_LOCALE"]
    return FORMAT_LOCALES.get(str(language), str(language))


def create_app(
    test_config: Mapping[str, Any] | None = None, instance_path: str | None = None
) -> Flask:
    """Build the application: settings, extensions, blueprints and commands."""
    app = Flask(
        __name__,
        instance_path=instance_path,
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    instance_path = Path(app.instance_path)
    instance_path.mkdir(parents=True, exist_ok=True)

    app.config.from_mapping(load_settings(environ(), instance_path))
    app.config.update(
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
    )
    if test_config is not None:
        app.config.from_mapping(test_config)
    # Flask-Babel formats dates in this zone; screens show the organisation's local time.
    app.config["BABEL_DEFAULT_TIMEZONE"] = app.config["ORG_TIMEZONE"]
    validate_settings(app.config)
    check_shipped_workflows()

    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )

    try:
        db.init_app(app)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"DATABASE_URL {redact_url(app.config['SQLALCHEMY_DATABASE_URI'])} cannot be used: "
            f"{exc}. Use sqlite:////path/to/file.db or postgresql://user@host:5432/name"
        ) from exc
    # SQLite cannot ALTER most constraints, so migrations use batch mode there.
    with app.app_context():
        use_sqlite_wal(db.engine)
    migrate.init_app(
        app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True, compare_type=True
    )
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"

    from inbox import models  # noqa: F401 - registers the tables on db.metadata
    from inbox.views import register_views

    register_views(app)

    from inbox.cli import register_commands

    register_commands(app)
    return app
