"""Move raw mail bytes to a table of their own

Revision ID: e4a9c7b21f60
Revises: 8b3e6f1d4a27
Create Date: 2026-12-05 06:30:00

SQLite rewrites a whole row, large values included, when an UPDATE changes the row's size.
Setting raw_message.processed_at wrote every mail's bytes twice. The bytes now live in
raw_message_content, which is written once and never updated.
"""
from alembic import op
import sqlalchemy as sa

import inbox.models.types  # noqa: F401 - autogenerate refers to the UTCDateTime column type
from inbox.models.compression import compress_with_lz4, supports_lz4


# revision identifiers, used by Alembic.
revision = 'e4a9c7b21f60'
down_revision = '8b3e6f1d4a27'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'raw_message_content',
        sa.Column('raw_message_id', sa.Integer(), nullable=False),
        sa.Column('raw', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ['raw_message_id'],
            ['raw_message.id'],
            name=op.f('fk_raw_message_content_raw_message_id_raw_message'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('raw_message_id', name=op.f('pk_raw_message_content')),
    )
    connection = op.get_bind()
    compress_with_lz4(connection, 'raw_message_content', 'raw')
    op.execute(
        sa.text(
            "INSERT INTO raw_message_content (raw_message_id, raw) "
            "SELECT id, raw FROM raw_message WHERE raw IS NOT NULL"
        )
    )
    # A native DROP COLUMN (SQLite 3.35 and later), because a batch copy of raw_message would
    # drop the old table, and with foreign keys enforced that deletes the rows copied above.
    op.drop_column('raw_message', 'raw')


def downgrade():
    op.add_column('raw_message', sa.Column('raw', sa.LargeBinary(), nullable=True))
    connection = op.get_bind()
    if supports_lz4(connection):
        op.execute(sa.text("ALTER TABLE raw_message ALTER COLUMN raw SET COMPRESSION lz4"))
    op.execute(
        sa.text(
            "UPDATE raw_message SET raw = (SELECT c.raw FROM raw_message_content c "
            "WHERE c.raw_message_id = raw_message.id)"
        )
    )
    op.drop_table('raw_message_content')
