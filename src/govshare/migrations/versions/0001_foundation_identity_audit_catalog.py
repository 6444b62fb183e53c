"""foundation: identity, audit, catalog

Revision ID: 0001
Revises:
Create Date: 2026-11-21 05:00:49.392255
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import govshare.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_nonce",
        sa.Column("app_key", sa.String(length=40), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("seen_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("app_key", "nonce", name=op.f("pk_api_nonce")),
    )
    with op.batch_alter_table("api_nonce", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_nonce_seen_at"), ["seen_at"], unique=False)

    op.create_table(
        "audit_entry",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=60), nullable=False),
        sa.Column("actor_kind", sa.String(length=10), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("object_type", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.String(length=80), nullable=True),
        sa.Column(
            "before",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "after",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("remote_addr", sa.String(length=64), nullable=True),
        sa.Column("alg", sa.String(length=10), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entry")),
    )
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entry_actor_at", ["actor", "at"], unique=False)
        batch_op.create_index("ix_audit_entry_object", ["object_type", "object_id"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "classification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("level between 1 and 4", name=op.f("ck_classification_level_range")),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["classification.id"],
            name=op.f("fk_classification_parent_id_classification"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classification")),
        sa.UniqueConstraint("code", name=op.f("uq_classification_code")),
    )
    with op.batch_alter_table("classification", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_classification_parent_id"), ["parent_id"], unique=False
        )

    op.create_table(
        "code_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_entry")),
        sa.UniqueConstraint("table_name", "code", name="uq_code_entry_table_code"),
    )
    op.create_table(
        "department",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("short_name", sa.String(length=20), nullable=False),
        sa.Column("credit_code", sa.String(length=18), nullable=False),
        sa.Column("division_code", sa.String(length=6), nullable=False),
        sa.Column(
            "level",
            sa.Enum(
                "province", "city", "district", name="departmentlevel", native_enum=False, length=10
            ),
            nullable=False,
        ),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["department.id"], name=op.f("fk_department_parent_id_department")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_department")),
        sa.UniqueConstraint("credit_code", name=op.f("uq_department_credit_code")),
        sa.UniqueConstraint("name", name=op.f("uq_department_name")),
    )
    op.create_table(
        "api_client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_key", sa.String(length=40), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column(
            "permissions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_api_client_department_id_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_client")),
        sa.UniqueConstraint("app_key", name=op.f("uq_api_client_app_key")),
    )
    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_client_department_id"), ["department_id"], unique=False
        )

    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=50), nullable=False),
        sa.Column("display_name", sa.String(length=50), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column(
            "roles",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", govshare.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_id"], ["department.id"], name=op.f("fk_app_user_department_id_department")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("username", name=op.f("uq_app_user_username")),
    )
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_app_user_department_id"), ["department_id"], unique=False
        )

    op.create_table(
        "demand",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("wanted_items", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"], ["department.id"], name=op.f("fk_demand_department_id_department")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demand")),
    )
    with op.batch_alter_table("demand", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_demand_department_id"), ["department_id"], unique=False
        )

    op.create_table(
        "information_system",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("function", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("usage_frequency", sa.String(length=20), nullable=False),
        sa.Column("approval", sa.String(length=200), nullable=False),
        sa.Column("funding", sa.String(length=200), nullable=False),
        sa.Column("network", sa.String(length=20), nullable=False),
        sa.Column("in_use", sa.Boolean(), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_information_system_department_id_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_information_system")),
        sa.UniqueConstraint("department_id", "name", name="uq_information_system_dept_name"),
    )
    with op.batch_alter_table("information_system", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_information_system_department_id"), ["department_id"], unique=False
        )

    op.create_table(
        "auth_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("console", "token", name="sessionkind", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_auth_session_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_session_token_hash")),
    )
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_session_user_id"), ["user_id"], unique=False)

    op.create_table(
        "resource",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("classification_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "base", "theme", "department", name="resourcekind", native_enum=False, length=12
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("provider_department_id", sa.Integer(), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("format_detail", sa.String(length=100), nullable=False),
        sa.Column(
            "sharing_type",
            sa.Enum("1", "2", "3", name="sharingtype", native_enum=False),
            nullable=False,
        ),
        sa.Column("sharing_conditions", sa.Text(), nullable=False),
        sa.Column("not_shared_basis", sa.Text(), nullable=False),
        sa.Column(
            "sharing_modes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("open_conditions", sa.Text(), nullable=False),
        sa.Column("update_cycle", sa.String(length=20), nullable=False),
        sa.Column("publish_date", sa.Date(), nullable=True),
        sa.Column(
            "related_codes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("source_system_id", sa.Integer(), nullable=True),
        sa.Column("secrecy", sa.String(length=20), nullable=False),
        sa.Column(
            "extensions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "pending_registration",
                "returned",
                "registration_rejected",
                "registered",
                "pending_publication",
                "publication_rejected",
                "published",
                "withdrawn",
                name="resourcestatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["classification_id"],
            ["classification.id"],
            name=op.f("fk_resource_classification_id_classification"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_department_id"],
            ["department.id"],
            name=op.f("fk_resource_provider_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["source_system_id"],
            ["information_system.id"],
            name=op.f("fk_resource_source_system_id_information_system"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource")),
        sa.UniqueConstraint("classification_id", "sequence", name="uq_resource_class_sequence"),
        sa.UniqueConstraint("code", name=op.f("uq_resource_code")),
    )
    with op.batch_alter_table("resource", schema=None) as batch_op:
        batch_op.create_index("ix_resource_listed_updated", ["listed", "updated_at"], unique=False)
        batch_op.create_index(
            "ix_resource_provider_status", ["provider_department_id", "status"], unique=False
        )
        batch_op.create_index("ix_resource_status_updated", ["status", "updated_at"], unique=False)

    op.create_table(
        "demand_response",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("demand_id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["demand_id"],
            ["demand.id"],
            name=op.f("fk_demand_response_demand_id_demand"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_demand_response_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resource.id"], name=op.f("fk_demand_response_resource_id_resource")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demand_response")),
    )
    with op.batch_alter_table("demand_response", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_demand_response_demand_id"), ["demand_id"], unique=False
        )

    op.create_table(
        "information_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("data_type", sa.String(length=2), nullable=False),
        sa.Column("length", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("code_table", sa.String(length=40), nullable=True),
        sa.Column("is_key", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resource.id"],
            name=op.f("fk_information_item_resource_id_resource"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_information_item")),
        sa.UniqueConstraint("resource_id", "code", name="uq_information_item_resource_code"),
    )
    with op.batch_alter_table("information_item", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_information_item_resource_id"), ["resource_id"], unique=False
        )

    op.create_table(
        "resource_transition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=False),
        sa.Column("to_status", sa.String(length=24), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=50), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resource.id"],
            name=op.f("fk_resource_transition_resource_id_resource"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_transition")),
    )
    with op.batch_alter_table("resource_transition", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_resource_transition_resource_id"), ["resource_id"], unique=False
        )

    op.create_table(
        "resource_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "snapshot",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", govshare.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resource.id"],
            name=op.f("fk_resource_version_resource_id_resource"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_version")),
        sa.UniqueConstraint("resource_id", "version", name="uq_resource_version_resource_version"),
    )

    # Search documents (see govshare.catalog.search): FTS5 on SQLite, GIN on PostgreSQL.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE catalog_fts USING fts5(title, body, tokenize='unicode61')")
    else:
        op.execute(
            "CREATE TABLE catalog_search (resource_id integer PRIMARY KEY "
            "REFERENCES resource(id) ON DELETE CASCADE, tsv tsvector NOT NULL)"
        )
        op.execute("CREATE INDEX ix_catalog_search_tsv ON catalog_search USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS catalog_fts")
    else:
        op.execute("DROP TABLE IF EXISTS catalog_search")
    op.drop_table("resource_version")
    with op.batch_alter_table("resource_transition", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resource_transition_resource_id"))

    op.drop_table("resource_transition")
    with op.batch_alter_table("information_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_information_item_resource_id"))

    op.drop_table("information_item")
    with op.batch_alter_table("demand_response", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_demand_response_demand_id"))

    op.drop_table("demand_response")
    with op.batch_alter_table("resource", schema=None) as batch_op:
        batch_op.drop_index("ix_resource_status_updated")
        batch_op.drop_index("ix_resource_provider_status")
        batch_op.drop_index("ix_resource_listed_updated")

    op.drop_table("resource")
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_session_user_id"))

    op.drop_table("auth_session")
    with op.batch_alter_table("information_system", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_information_system_department_id"))

    op.drop_table("information_system")
    with op.batch_alter_table("demand", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_demand_department_id"))

    op.drop_table("demand")
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_user_department_id"))

    op.drop_table("app_user")
    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_client_department_id"))

    op.drop_table("api_client")
    op.drop_table("department")
    op.drop_table("code_entry")
    with op.batch_alter_table("classification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_classification_parent_id"))

    op.drop_table("classification")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entry_object")
        batch_op.drop_index("ix_audit_entry_actor_at")

    op.drop_table("audit_entry")
    with op.batch_alter_table("api_nonce", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_nonce_seen_at"))

    op.drop_table("api_nonce")
