"""Queue acknowledgements before composing them

Revision ID: 8b3e6f1d4a27
Revises: 5d1f0a7c2e93
Create Date: 2026-12-05 04:10:00

The ingest now commits only the promise of an acknowledgement with its ticket; the mail is
composed when it is delivered, so a queued delivery may have no message yet.
"""
from alembic import op
import sqlalchemy as sa

import inbox.models.types  # noqa: F401 - autogenerate refers to the UTCDateTime column type


# revision identifiers, used by Alembic.
revision = '8b3e6f1d4a27'
down_revision = '5d1f0a7c2e93'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('mail_delivery', schema=None) as batch_op:
        batch_op.alter_column('message_pk', existing_type=sa.Integer(), nullable=True)


def downgrade():
    # A delivery that was never composed has nothing to send: it is dropped.
    op.execute(sa.text("DELETE FROM mail_delivery WHERE message_pk IS NULL"))
    with op.batch_alter_table('mail_delivery', schema=None) as batch_op:
        batch_op.alter_column('message_pk', existing_type=sa.Integer(), nullable=False)
