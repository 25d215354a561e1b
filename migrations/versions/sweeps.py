"""Sweeps: the sweeps and sweep_trials tables, and jobs.sweep_id (a trial is an ordinary job).

On SQLite, batch mode rebuilds the jobs table to add the column and its reference; migrations/env.py
turns foreign keys off while it does, so dropping the old table takes no loss point or artifact along.

Revision ID: sweeps
Revises: checkpoints
Create Date: 2026-11-28
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'sweeps'
down_revision: Union[str, None] = 'checkpoints'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('sweeps',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('sweep_spec', sa.JSON(), nullable=False),
    sa.Column('trials', sa.Integer(), nullable=False),
    sa.Column('trials_created', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('running', 'finished', 'cancelled')", name='ck_sweeps_status'),
    sa.CheckConstraint('trials_created <= trials', name='ck_sweeps_trials_created'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sweeps_owner_created', 'sweeps', ['owner', 'created_at'], unique=False)
    op.create_index('ix_sweeps_status', 'sweeps', ['status'], unique=False)
    op.create_table('sweep_trials',
    sa.Column('sweep_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('system_attrs', sa.JSON(), nullable=False),
    sa.Column('pruned', sa.Boolean(), nullable=False),
    sa.Column('checked_step', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sweep_id', 'number'),
    sa.UniqueConstraint('job_id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sweep_id', sa.Uuid(), nullable=True))
        batch_op.create_foreign_key('fk_jobs_sweep_id', 'sweeps', ['sweep_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_jobs_sweep', ['sweep_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_sweep')
        batch_op.drop_constraint('fk_jobs_sweep_id', type_='foreignkey')
        batch_op.drop_column('sweep_id')
    op.drop_table('sweep_trials')
    op.drop_index('ix_sweeps_status', table_name='sweeps')
    op.drop_index('ix_sweeps_owner_created', table_name='sweeps')
    op.drop_table('sweeps')
