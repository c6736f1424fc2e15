"""Drop the second index on workflow steps

Revision ID: d4a8b2e6f0c7
Revises: c9e2f5a8d1b3
Create Date: 2026-12-05 09:45:00

The unique key on (instance_id, step_id) begins with instance_id, so it serves every look-up
the plain index on instance_id served. A ticket plans about a dozen steps, and each of them
updated both indexes.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'd4a8b2e6f0c7'
down_revision = 'c9e2f5a8d1b3'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_workflow_step_instance_id', table_name='workflow_step')


def downgrade():
    op.create_index('ix_workflow_step_instance_id', 'workflow_step', ['instance_id'])
