"""The read-only PostgreSQL role for browsing (Adminer): it reads every table, writes nowhere."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from psycopg import sql
from sqlalchemy import Engine

from candlecast.domain import ConfigError, StoreError

# An arbitrary, fixed key: two replicas creating the role at once would race on CREATE ROLE.
_ROLE_LOCK_KEY = 0x726F6C65  # "role"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Names PostgreSQL reserves, or that mean something else in GRANT and ALTER ROLE.
_RESERVED = frozenset({"public", "none", "current_user", "session_user", "current_role"})
_POWERS = ("CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS")
_WRITES = "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"


@dataclass(frozen=True)
class ReadonlyRole:
    """What create_readonly_role left in place."""

    name: str
    schema: str
    created: bool
    tables: int
    # Roles whose future tables in the schema the role reads too (default privileges).
    owners: tuple[str, ...]
    notes: tuple[str, ...]


def validate_role_name(name: str) -> str:
    """Returns the name if it is a plain lower-case PostgreSQL identifier a role may take."""
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"role name {name!r} is not valid: use 1 to 63 lower-case letters, digits and "
            "underscores, starting with a letter or an underscore"
        )
    if name.startswith("pg_") or name in _RESERVED:
        raise ConfigError(f"role name {name!r} is reserved by PostgreSQL")
    return name


def require_postgresql(engine: Engine) -> None:
    """Refuses, in one line, a database without roles."""
    if engine.dialect.name != "postgresql":
        raise ConfigError(
            "create-readonly-role needs PostgreSQL: SQLite has no roles or privileges "
            "(set CANDLECAST_DATABASE_URL to a postgresql:// URL)"
        )


def create_readonly_role(engine: Engine, *, name: str, password: str) -> ReadonlyRole:
    """Creates or updates a role that can log in and SELECT every table in the schema."""
    validate_role_name(name)
    require_postgresql(engine)
    if not password:
        raise ConfigError("the read-only role needs a non-empty password")
    try:
        with engine.begin() as connection:
            raw = cast("psycopg.Connection[Any]", connection.connection.driver_connection)
            return _Grants(raw, name).apply(password)
    except psycopg.Error as exc:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise StoreError(f"cannot set up the read-only role {name!r}: {detail}") from None


class _Grants:
    """The statements, in one transaction: a failure leaves nothing half done."""

    def __init__(self, raw: psycopg.Connection[Any], name: str) -> None:
        self.raw = raw
        self.name = name
        self.role = sql.Identifier(name)
        self.notes: list[str] = []

    def run(self, statement: str, *args: sql.Composable) -> None:
        self.raw.execute(sql.SQL(statement).format(*args))

    def one(self, query: str, params: dict[str, Any] | None = None) -> tuple[Any, ...]:
        row = self.raw.execute(query, params).fetchone()
        assert row is not None
        return tuple(row)

    def apply(self, password: str) -> ReadonlyRole:
        self.one("SELECT pg_advisory_xact_lock(%(key)s)", {"key": _ROLE_LOCK_KEY})
        me, schema, database = self.one("SELECT current_user, current_schema(), current_database()")
        if schema is None:
            raise ConfigError(
                "the database URL's search_path names no existing schema; create it or run "
                "`candlecast db upgrade` first"
            )
        if self.name == me:
            raise ConfigError(
                f"{self.name!r} is the role this command connects as; choose another name"
            )
        created = self._create_or_update(password, schema)
        self._session_defaults(schema, database)
        self._database_and_schemas(schema, database)
        tables = self._tables(schema)
        owners = self._default_privileges(me, schema)
        self._verify(schema)
        return ReadonlyRole(
            name=self.name,
            schema=schema,
            created=created,
            tables=tables,
            owners=owners,
            notes=tuple(self.notes),
        )

    def _create_or_update(self, password: str, schema: str) -> bool:
        row = self.raw.execute(
            "SELECT oid, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls "
            "FROM pg_roles WHERE rolname = %(name)s",
            {"name": self.name},
        ).fetchone()
        # Hash on the client, as psql's \password does: the server, and any statement log,
        # sees the verifier only, never the password.
        method = self.one("SHOW password_encryption")[0]
        verifier = self.raw.pgconn.encrypt_password(
            password.encode(), self.name.encode(), str(method).encode()
        ).decode()
        if row is None:
            self.run("CREATE ROLE {} LOGIN PASSWORD {}", self.role, sql.Literal(verifier))
            return True
        oid, superuser, *powers = row
        if superuser:
            raise ConfigError(f"role {self.name!r} is a superuser; it cannot be made read-only")
        self._refuse_inherited_or_owned(oid, schema)
        self.run("ALTER ROLE {} LOGIN PASSWORD {}", self.role, sql.Literal(verifier))
        for flag, has in zip(_POWERS, powers, strict=True):
            if has:
                self.run(f"ALTER ROLE {{}} NO{flag}", self.role)
        return False

    def _refuse_inherited_or_owned(self, oid: int, schema: str) -> None:
        # Either would let the role write whatever its grants say.
        parents = [
            row[0]
            for row in self.raw.execute(
                "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
                "WHERE m.member = %(oid)s ORDER BY 1",
                {"oid": oid},
            )
        ]
        if parents:
            raise ConfigError(
                f"role {self.name!r} is a member of {', '.join(parents)} and would inherit "
                f"their rights; revoke that membership first"
            )
        owns_schema, owned = self.one(
            "SELECT n.nspowner = %(oid)s, (SELECT count(*) FROM pg_class c "
            "WHERE c.relnamespace = n.oid AND c.relowner = %(oid)s) "
            "FROM pg_namespace n WHERE n.nspname = %(schema)s",
            {"oid": oid, "schema": schema},
        )
        if owns_schema or owned:
            raise ConfigError(
                f"role {self.name!r} owns schema {schema!r} or tables in it, and an owner can "
                "always write; use a new role name"
            )

    def _session_defaults(self, schema: str, database: str) -> None:
        # A second line of defence, not the boundary (a session may turn it off): the
        # privileges below are what refuse writes.
        self.run("ALTER ROLE {} SET default_transaction_read_only = on", self.role)
        # Adminer and psql then open on candlecast's tables.
        self.run(
            "ALTER ROLE {} IN DATABASE {} SET search_path = {}",
            self.role,
            sql.Identifier(database),
            sql.Identifier(schema),
        )

    def _database_and_schemas(self, schema: str, database: str) -> None:
        db = sql.Identifier(database)
        self.run("REVOKE CREATE, TEMPORARY ON DATABASE {} FROM {}", db, self.role)
        connect = self.one(
            "SELECT has_database_privilege(%(name)s, current_database(), 'CONNECT')",
            {"name": self.name},
        )[0]
        if not connect:
            self.run("GRANT CONNECT ON DATABASE {} TO {}", db, self.role)
        for each in dict.fromkeys([schema, "public"]):
            exists = self.one(
                "SELECT count(*) FROM pg_namespace WHERE nspname = %(schema)s", {"schema": each}
            )[0]
            if not exists:
                continue
            self.run("REVOKE ALL ON SCHEMA {} FROM {}", sql.Identifier(each), self.role)
            # Before PostgreSQL 15 every role may create tables in `public`: withdraw that
            # as PostgreSQL 15 does, since the role inherits PUBLIC's rights.
            public_creates = self.one(
                "SELECT has_schema_privilege('public', %(schema)s, 'CREATE')", {"schema": each}
            )[0]
            if public_creates:
                self.run("REVOKE CREATE ON SCHEMA {} FROM PUBLIC", sql.Identifier(each))
                self.notes.append(f"revoked CREATE on schema {each} from PUBLIC")
        self.run("GRANT USAGE ON SCHEMA {} TO {}", sql.Identifier(schema), self.role)

    def _tables(self, schema: str) -> int:
        target = sql.Identifier(schema)
        for kind in ("TABLES", "SEQUENCES"):
            self.run(f"REVOKE ALL ON ALL {kind} IN SCHEMA {{}} FROM {{}}", target, self.role)
            self.run(f"GRANT SELECT ON ALL {kind} IN SCHEMA {{}} TO {{}}", target, self.role)
        return int(
            self.one(
                "SELECT count(*) FROM pg_class WHERE relnamespace = to_regnamespace(%(s)s) "
                "AND relkind IN ('r', 'p', 'v', 'm', 'f')",
                {"s": schema},
            )[0]
        )

    def _default_privileges(self, me: str, schema: str) -> tuple[str, ...]:
        # Future tables are readable when their creator's default privileges say so: the
        # migrating role (this one) and whoever owns the tables already there.
        owners = [me]
        others = self.raw.execute(
            "SELECT DISTINCT r.rolname, pg_has_role(current_user, r.oid, 'USAGE') "
            "FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
            "WHERE c.relnamespace = to_regnamespace(%(s)s) AND r.rolname <> current_user "
            "ORDER BY 1",
            {"s": schema},
        ).fetchall()
        for owner, usable in others:
            if usable:
                owners.append(owner)
            else:
                self.notes.append(
                    f"tables owned by {owner} are readable now, but future ones only if "
                    f"{owner} runs this command too"
                )
        for owner in owners:
            who = sql.Identifier(owner)
            for kind in ("TABLES", "SEQUENCES"):
                # A global default (no IN SCHEMA) cannot be narrowed per schema: clear it too.
                self.run(
                    f"ALTER DEFAULT PRIVILEGES FOR ROLE {{}} REVOKE ALL ON {kind} FROM {{}}",
                    who,
                    self.role,
                )
                for action in (f"REVOKE ALL ON {kind} FROM", f"GRANT SELECT ON {kind} TO"):
                    self.run(
                        f"ALTER DEFAULT PRIVILEGES FOR ROLE {{}} IN SCHEMA {{}} {action} {{}}",
                        who,
                        sql.Identifier(schema),
                        self.role,
                    )
        return tuple(owners)

    def _verify(self, schema: str) -> None:
        # Rights granted to PUBLIC by someone else would still reach the role: check the
        # outcome, not the statements, and roll everything back if it is not read-only.
        writable = [
            row[0]
            for row in self.raw.execute(
                "SELECT c.relname FROM pg_class c "
                "WHERE c.relnamespace = to_regnamespace(%(s)s) "
                "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
                "AND has_table_privilege(%(name)s, c.oid, %(writes)s) ORDER BY 1",
                {"s": schema, "name": self.name, "writes": _WRITES},
            )
        ]
        if writable:
            raise StoreError(
                f"role {self.name!r} could still write {', '.join(writable)} through rights "
                "granted to PUBLIC; revoke those first"
            )
        creates = [
            row[0]
            for row in self.raw.execute(
                "SELECT 'schema ' || nspname FROM pg_namespace "
                "WHERE nspname IN (%(s)s, 'public') AND has_schema_privilege(%(name)s, oid, "
                "'CREATE') UNION ALL SELECT 'database ' || current_database() "
                "WHERE has_database_privilege(%(name)s, current_database(), 'CREATE')",
                {"name": self.name, "s": schema},
            )
        ]
        if creates:
            raise StoreError(
                f"role {self.name!r} could still create objects in {', '.join(creates)} "
                "through rights granted to PUBLIC that this role may not revoke; revoke them "
                "as their owner first"
            )
