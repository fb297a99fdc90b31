"""metrics: a covering index for reading one series in step order

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 17:20:00
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.create_index('ix_metrics_series', ['job_id', 'name', 'step', 'attempt', 'value'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_metrics_series')
