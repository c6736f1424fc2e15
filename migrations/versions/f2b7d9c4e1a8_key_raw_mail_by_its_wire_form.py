"""Key raw mail by the SHA-256 of its wire form

Revision ID: f2b7d9c4e1a8
Revises: e4a9c7b21f60
Create Date: 2026-12-05 07:30:00

raw_message.sha256 was the hash of the bytes exactly as stored. It is now the hash of the mail
with CRLF line endings and one line break at the end, so that a copy saved with bare LF matches
the mail fetched over IMAP. Rows stored earlier get the new key here; otherwise a file imported
before the upgrade would be stored and ticketed again when imported or fetched once more. Where
both forms of one mail are stored already, both rows keep their old keys.
"""
import hashlib
import re

from alembic import op
import sqlalchemy as sa

import inbox.models.types  # noqa: F401 - autogenerate refers to the UTCDateTime column type


# revision identifiers, used by Alembic.
revision = 'f2b7d9c4e1a8'
down_revision = 'e4a9c7b21f60'
branch_labels = None
depends_on = None

BARE_LF = re.compile(rb"(?<!\r)\n")
CHUNK = 200


def wire_form_digest(raw: bytes) -> str:
    """Hash the mail in its wire form; a copy of inbox.mail.store.content_digest at this revision."""
    if raw.count(b"\n") != raw.count(b"\r\n"):
        raw = BARE_LF.sub(b"\r\n", raw)
    if not raw.endswith(b"\r\n") or raw.endswith(b"\r\n\r\n"):
        raw = raw.rstrip(b"\r\n") + b"\r\n"
    return hashlib.sha256(raw).hexdigest()


def exact_digest(raw: bytes) -> str:
    """Hash the bytes exactly as stored, the key before this revision."""
    return hashlib.sha256(raw).hexdigest()


def rekey(digest) -> None:
    """Give every raw message the key ``digest`` computes, unless another row has that key."""
    connection = op.get_bind()
    ids = [row[0] for row in connection.execute(sa.text("SELECT id FROM raw_message ORDER BY id"))]
    select_rows = sa.text(
        "SELECT r.id, r.sha256, c.raw FROM raw_message r "
        "JOIN raw_message_content c ON c.raw_message_id = r.id WHERE r.id IN :ids"
    ).bindparams(sa.bindparam("ids", expanding=True))
    for start in range(0, len(ids), CHUNK):
        rows = connection.execute(select_rows, {"ids": ids[start : start + CHUNK]}).all()
        for raw_message_id, old_key, raw in rows:
            new_key = digest(bytes(raw))
            if new_key == old_key:
                continue
            taken = connection.execute(
                sa.text("SELECT 1 FROM raw_message WHERE sha256 = :key"), {"key": new_key}
            ).first()
            if taken is None:
                connection.execute(
                    sa.text("UPDATE raw_message SET sha256 = :key WHERE id = :id"),
                    {"key": new_key, "id": raw_message_id},
                )


def upgrade():
    rekey(wire_form_digest)


def downgrade():
    rekey(exact_digest)
