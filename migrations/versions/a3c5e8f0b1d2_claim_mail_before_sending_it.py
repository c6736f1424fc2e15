"""Claim mail before sending it

Revision ID: a3c5e8f0b1d2
Revises: f2b7d9c4e1a8
Create Date: 2026-12-05 07:40:00

Two processes that tried the same queued mail at once both sent it. An attempt now claims the
row first (status "sending") and records when it began, which also times the next retry.
"""
from alembic import op
import sqlalchemy as sa

import inbox.models.types  # noqa: F401 - autogenerate refers to the UTCDateTime column type


# revision identifiers, used by Alembic.
revision = 'a3c5e8f0b1d2'
down_revision = 'f2b7d9c4e1a8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('mail_delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempted_at', inbox.models.types.UTCDateTime(), nullable=True))


def downgrade():
    # A claim left by a stopped process goes back to the queue.
    op.execute(sa.text("UPDATE mail_delivery SET status = 'queued' WHERE status = 'sending'"))
    with op.batch_alter_table('mail_delivery', schema=None) as batch_op:
        batch_op.drop_column('attempted_at')
