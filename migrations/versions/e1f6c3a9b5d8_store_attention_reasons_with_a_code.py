"""Store attention reasons with a code

Revision ID: e1f6c3a9b5d8
Revises: d4a8b2e6f0c7
Create Date: 2026-12-05 10:05:00

A ticket's reason for attention was English text only, so a Dutch screen showed it in English.
It now also keeps the reason's code and values, from which each screen translates it. Tickets
flagged before keep showing their stored text.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e1f6c3a9b5d8'
down_revision = 'd4a8b2e6f0c7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('attention_code', sa.String(length=32), server_default='', nullable=False)
        )
        batch_op.add_column(sa.Column('attention_params', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('attention_params')
        batch_op.drop_column('attention_code')
