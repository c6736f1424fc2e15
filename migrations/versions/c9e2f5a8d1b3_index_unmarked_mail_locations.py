"""Index unmarked mail locations

Revision ID: c9e2f5a8d1b3
Revises: b7d1e4a9c3f5
Create Date: 2026-12-05 09:40:00

Each poll reads the locations of its mailbox that are not yet flagged or moved on the server.
The unique key on (mailbox, uidvalidity, uid) found them only by reading every location the
mailbox ever had, so a poll slowed as the mailbox grew. A partial index holds the unmarked ones.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c9e2f5a8d1b3'
down_revision = 'b7d1e4a9c3f5'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        'ix_mail_location_unmarked',
        'mail_location',
        ['mailbox', 'uidvalidity'],
        postgresql_where=sa.text('marked_at IS NULL'),
        sqlite_where=sa.text('marked_at IS NULL'),
    )


def downgrade():
    op.drop_index('ix_mail_location_unmarked', table_name='mail_location')
