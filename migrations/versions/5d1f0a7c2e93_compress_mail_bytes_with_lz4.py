"""Compress mail bytes with lz4 on PostgreSQL

Revision ID: 5d1f0a7c2e93
Revises: bcc164e37e10
Create Date: 2026-12-05 03:40:00

pglz, PostgreSQL's default, made storing a batch of raw mail slower than everything else the
poller does with it. Values stored earlier keep their pglz compression; PostgreSQL reads both.
"""
from alembic import op
import sqlalchemy as sa

import inbox.models.types  # noqa: F401 - autogenerate refers to the UTCDateTime column type
from inbox.models.compression import compress_with_lz4, supports_lz4

# The byte columns as they were at this revision; raw_message.raw has moved since.
LZ4_COLUMNS = {"raw_message": "raw", "blob": "data"}


# revision identifiers, used by Alembic.
revision = '5d1f0a7c2e93'
down_revision = 'bcc164e37e10'
branch_labels = None
depends_on = None


def upgrade():
    connection = op.get_bind()
    for table_name, column in LZ4_COLUMNS.items():
        compress_with_lz4(connection, table_name, column)


def downgrade():
    connection = op.get_bind()
    if not supports_lz4(connection):
        return
    for table_name, column in LZ4_COLUMNS.items():
        op.execute(sa.text(f"ALTER TABLE {table_name} ALTER COLUMN {column} SET COMPRESSION pglz"))
