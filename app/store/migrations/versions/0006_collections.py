"""collections: embeddings imported from elsewhere (embedlab import, POST /api/collections)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 07:00:00
"""
from alembic import op
import sqlalchemy as sa

import app.store.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('collections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('owner', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('dims', sa.Integer(), nullable=False),
    sa.Column('classes', sa.Integer(), nullable=False),
    sa.Column('space', sa.String(length=20), nullable=False),
    sa.Column('images', sa.Text(), nullable=True),
    sa.Column('source', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', app.store.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', app.store.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('collections')
