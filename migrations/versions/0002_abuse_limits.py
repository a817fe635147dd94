"""token versions, file owners and sizes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

A user's token version is raised by a password change or reset: every token signed with
an older one is refused. A file belongs to the user who uploaded it (existing files have
no owner, so nobody can take them as a new avatar) and records its size for the quota.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('token_version', sa.Integer(), server_default='0', nullable=False)
        )
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('size', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index(batch_op.f('ix_files_owner_id'), ['owner_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_files_owner_id_users'), 'users', ['owner_id'], ['id'],
            ondelete='SET NULL',
        )


def downgrade():
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_files_owner_id_users'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_files_owner_id'))
        batch_op.drop_column('size')
        batch_op.drop_column('owner_id')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('token_version')
