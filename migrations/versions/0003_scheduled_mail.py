"""password resets, and mail due at a time

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

A password reset keeps a hash of its token, never the token. A mail delivery may be due
later (a reminder) and may be about a password reset rather than an appointment.
"""
from alembic import op
import sqlalchemy as sa



revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('password_resets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_password_resets_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_resets')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_password_resets_token_hash'))
    )
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.create_index('ix_password_resets_user_id_created_at', ['user_id', 'created_at'], unique=False)

    with op.batch_alter_table('mail_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('password_reset_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_mail_deliveries_password_reset_id'), ['password_reset_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_mail_deliveries_password_reset_id_password_resets'),
            'password_resets', ['password_reset_id'], ['id'], ondelete='CASCADE',
        )


def downgrade():
    with op.batch_alter_table('mail_deliveries', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_mail_deliveries_password_reset_id_password_resets'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_mail_deliveries_password_reset_id'))
        batch_op.drop_column('password_reset_id')
        batch_op.drop_column('due_at')
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.drop_index('ix_password_resets_user_id_created_at')
    op.drop_table('password_resets')
