"""searches, jobs.search_id + trial_number, and Optuna's study tables

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 20:40:00

Optuna's RDBStorage tables are created here (from the installed Optuna's own metadata) rather than by
Optuna, because Optuna would record its schema in the same `alembic_version` table as embedlab.
"""
from alembic import op
import sqlalchemy as sa

import app.store.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from optuna import version as optuna_version
    from optuna.storages._rdb import models as optuna_models

    op.create_table('searches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('owner', sa.String(length=100), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('study_name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('advancing_until', app.store.models.UTCDateTime(), nullable=True),
    sa.Column('created_at', app.store.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', app.store.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('study_name')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('trial_number', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_search_id'), ['search_id'], unique=False)
        batch_op.create_foreign_key('fk_jobs_search_id_searches', 'searches', ['search_id'], ['id'])

    bind = op.get_bind()
    optuna_models.BaseModel.metadata.create_all(bind)
    bind.execute(optuna_models.VersionInfoModel.__table__.insert().values(
        version_info_id=1, schema_version=optuna_models.SCHEMA_VERSION, library_version=optuna_version.__version__))


def downgrade() -> None:
    from optuna.storages._rdb import models as optuna_models

    optuna_models.BaseModel.metadata.drop_all(op.get_bind())
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint('fk_jobs_search_id_searches', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_jobs_search_id'))
        batch_op.drop_column('trial_number')
        batch_op.drop_column('search_id')

    op.drop_table('searches')
