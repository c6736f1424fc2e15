"""Keep mail attachments only in their raw mail

Revision ID: b7d1e4a9c3f5
Revises: a3c5e8f0b1d2
Create Date: 2026-12-05 09:20:00

Every attachment that arrived by mail was written twice: inside its raw mail and again as a
blob. New mail attachments keep only their hash and size in the blob row, so its bytes may be
empty. Rows stored before keep their bytes; reading prefers them.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7d1e4a9c3f5'
down_revision = 'a3c5e8f0b1d2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('blob', schema=None) as batch_op:
        batch_op.alter_column('data', existing_type=sa.LargeBinary(), nullable=True)


def downgrade():
    # NOTE: decoding a file needs the mail parser, so this imports the application's one.
    from inbox.mail.parse import parse_message

    connection = op.get_bind()
    empty = connection.execute(
        sa.text("SELECT sha256, size FROM blob WHERE data IS NULL")
    ).all()
    for sha256, size in empty:
        # One raw mail at a time, so a large store does not have to fit in memory.
        raw_ids = connection.execute(
            sa.text(
                "SELECT message.raw_message_id FROM attachment "
                "JOIN message ON message.id = attachment.message_id "
                "WHERE attachment.sha256 = :sha256 AND message.raw_message_id IS NOT NULL"
            ),
            {"sha256": sha256},
        ).scalars().all()
        for raw_id in raw_ids:
            raw = connection.execute(
                sa.text("SELECT raw FROM raw_message_content WHERE raw_message_id = :id"),
                {"id": raw_id},
            ).scalar()
            data = _file_in(parse_message, bytes(raw or b""), sha256, size)
            if data is not None:
                connection.execute(
                    sa.text("UPDATE blob SET data = :data WHERE sha256 = :sha256"),
                    {"data": data, "sha256": sha256},
                )
                break
    missing = connection.execute(sa.text("SELECT count(*) FROM blob WHERE data IS NULL")).scalar()
    if missing:
        raise RuntimeError(
            f"{missing} files could not be decoded from their raw mail, so the blob column "
            "cannot be made NOT NULL again; stay on this revision"
        )
    with op.batch_alter_table('blob', schema=None) as batch_op:
        batch_op.alter_column('data', existing_type=sa.LargeBinary(), nullable=False)


def _file_in(parse_message, raw, sha256, size):
    """Return the bytes of the file with this hash and size in a raw mail, or None."""
    if not raw.strip():
        return None
    for part in parse_message(raw).attachments:
        if part.sha256 == sha256 and part.size == size:
            return part.data
    return None
