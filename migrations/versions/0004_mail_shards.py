"""the stream shard of each mail delivery

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

With MAIL_STREAM_SHARDS above 1 an event goes to one of several shards of the mail
streams; its row records which, so the relay and the operator views find it again even
after the number of shards grew. Rows from before were all on the one shard, shard 0.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('mail_deliveries', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('shard', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade():
    with op.batch_alter_table('mail_deliveries', schema=None) as batch_op:
        batch_op.drop_column('shard')
