"""jobs.graph_error: why a succeeded job whose spec asked for a graph has none (the renderer's message),
so that /jobs/{id}/graph.svg can say the true reason.

Revision ID: graph_error
Revises: 0001
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'graph_error'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('graph_error', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_column('graph_error')
