"""A backend from a SQL connection's ``upstream_url``.

- ``postgresql://user@host:5432/dbname`` -> ``PostgresBackend``
- ``mysql://user@host:3306/dbname`` (or ``mariadb://``) -> ``MySqlBackend``
- ``rds-data:///dbname?resourceArn=arn:...&secretArn=arn:...`` -> ``RdsDataBackend``

The URL never carries a password: for the local backends it comes from the connection's
credential (``password``), for the Data API the secret ARN is AWS's business.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from wardgate.dataapi.backends import Backend, Limits

SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "rds-data")


def backend_from_url(
    connection: str,
    url: str,
    *,
    password: str | None = None,
    binding_key: bytes | None = None,
    limits: Limits | None = None,
) -> Backend:
    """The backend ``url`` names; ``binding_key`` is required for ``rds-data`` (see ``rdsdata``)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"SQL upstream {url!r} must use one of {', '.join(SCHEMES)}")
    if parts.password is not None:
        raise ValueError("the SQL upstream URL must not carry a password: use the connection's credential")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError(f"SQL upstream {url!r} must name one database in its path")
    if parts.scheme == "rds-data":
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if not query.get("resourceArn") or not query.get("secretArn"):
            raise ValueError("an rds-data upstream needs resourceArn and secretArn query parameters")
        if binding_key is None:
            raise ValueError("an rds-data backend needs a binding_key for its transaction ids")
        # Each backend's module is imported for its scheme only: the SQL function reaches databases
        # through rds-data alone, and the local backends' modules are a cold start's to skip.
        from wardgate.dataapi.rdsdata import RdsDataBackend

        return RdsDataBackend(
            connection=connection,
            resource_arn=query["resourceArn"],
            secret_arn=query["secretArn"],
            database=database,
            binding_key=binding_key,
            limits=limits,
        )
    if not parts.hostname or not parts.username:
        raise ValueError(f"SQL upstream {url!r} must name a user and a host")
    user, host = unquote(parts.username), parts.hostname
    if parts.scheme in ("postgresql", "postgres"):
        from wardgate.dataapi.postgres import PostgresBackend

        return PostgresBackend(
            host=host, port=parts.port or 5432, dbname=database, user=user, password=password, limits=limits
        )
    from wardgate.dataapi.mysql import MySqlBackend

    return MySqlBackend(
        host=host,
        port=parts.port or 3306,
        database=database,
        user=user,
        password=password or "",
        limits=limits,
    )
