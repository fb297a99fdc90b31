"""jobs.devices and workers.devices: data-parallel jobs on several devices of one worker

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 07:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # server_default: jobs queued and workers registered before this revision run on one device.
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('devices', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('devices', sa.Integer(), server_default='1', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.drop_column('devices')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('devices')
