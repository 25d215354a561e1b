"""Experiments, and run metadata beside the spec: a job's experiment, name, tags and notes.

Jobs made before this revision get a readable name from their data kind and id (e.g. `moons-a3f2`),
no tags, empty notes and no experiment. Every job, loss point and artifact is kept (see
tests/services/test_migrations_data.py).

Revision ID: experiments
Revises: graph_error
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'experiments'
down_revision: Union[str, None] = 'graph_error'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('experiments',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner', 'name', name='uq_experiments_owner_name')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('experiment_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('tags', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('notes', sa.Text(), nullable=True))

    jobs = sa.table('jobs', sa.column('id', sa.Uuid()), sa.column('spec', sa.JSON()),
                    sa.column('name', sa.String()), sa.column('tags', sa.JSON()), sa.column('notes', sa.Text()))
    connection = op.get_bind()
    rows = connection.execute(sa.select(jobs.c.id, jobs.c.spec)).all()
    if rows:
        connection.execute(
            jobs.update().where(jobs.c.id == sa.bindparam('job_id'))
            .values(name=sa.bindparam('new_name'), tags=sa.bindparam('new_tags', type_=sa.JSON()), notes=''),
            [{'job_id': job_id, 'new_name': f"{(spec or {}).get('data', {}).get('kind', 'run')}-{job_id.hex[:4]}",
              'new_tags': {}} for job_id, spec in rows])

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.alter_column('name', existing_type=sa.String(length=200), nullable=False)
        batch_op.alter_column('tags', existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column('notes', existing_type=sa.Text(), nullable=False)
        batch_op.create_foreign_key('fk_jobs_experiment_id', 'experiments', ['experiment_id'], ['id'])
        batch_op.create_index('ix_jobs_owner_experiment_created', ['owner', 'experiment_id', 'created_at'],
                              unique=False)
        batch_op.create_index('ix_jobs_owner_final_loss', ['owner', 'final_loss'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_owner_final_loss')
        batch_op.drop_index('ix_jobs_owner_experiment_created')
        batch_op.drop_constraint('fk_jobs_experiment_id', type_='foreignkey')
        batch_op.drop_column('notes')
        batch_op.drop_column('tags')
        batch_op.drop_column('name')
        batch_op.drop_column('experiment_id')
    op.drop_table('experiments')
