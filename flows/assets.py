"""The exported tables and the PostDICOM account as Prefect assets: lineage and freshness.

Prefect 3.9 records a *materialization* when a task made with
:func:`prefect.assets.materialize` completes: one
``prefect.asset.materialization.succeeded`` event per asset (resource = the
asset's key, payload = the metadata added during the run, related = the
upstream assets), and one ``prefect.asset.referenced`` event per upstream
asset. The open-source server keeps them as events (Event Feed, automations);
Prefect Cloud also draws them as a lineage graph.

What this project records:

* ``nightly_order_export`` materializes the four tables, each keyed by where
  it lives (:func:`table_asset_key`: ``file:///abs/dest/orders``,
  ``s3://bucket/prefix/orders``), with the PostDICOM account it read as
  upstream (:func:`account_asset_key`: ``postdicom://<host>``), once all the
  run's days are committed. A run that fails records nothing (the days it
  committed are in their manifests), so a night that did not complete is a
  night the freshness automation sees missing.
* ``bulk_upload_and_share`` materializes the account itself (its studies),
  with no upstream, when it stored files: uploads and exports meet on the
  account's key.

Keys never hold a secret or patient data: the account is named by its host
(and port) only, never the user name, password or path of its web address;
a table's key is the operator's destination with any ``user:password@``,
query and fragment removed. Prefect refuses keys with spaces and a few other
characters (``prefect.types.names.RESTRICTED_ASSET_CHARACTERS``, ``%``
included, so percent-encoding is not an option): each is replaced with ``_``;
keys longer than 512 characters are cut and end with a digest of the whole.
The metadata holds dates, row counts, the schema version, the flow run id and
the manifests' locations: no patient data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prefect.assets import Asset, AssetProperties, add_asset_metadata, materialize
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.types.names import MAX_ASSET_KEY_LENGTH, RESTRICTED_ASSET_CHARACTERS

from blocks import PostDicomCredentials

from .export_schema import SCHEMA_VERSION
from .export_destination import Destination
from .parquet_writer import CommittedPartition

ACCOUNT_SCHEME = "postdicom"
"""Scheme of the account's asset key: ``postdicom://<host>[:<port>]``."""
MATERIALIZED_BY = "postdicom-flows"
"""Named as the tool that materialized the assets (a related resource of each materialization event)."""
TABLE_DESCRIPTION = (
    "A table of postdicom-flows' nightly export, one Hive partition per study date "
    "(<table>/export_date=YYYY-MM-DD/*.parquet); columns in docs/export-schema.md."
)


def valid_asset_key(location: str) -> str:
    """``location`` as a key Prefect accepts: lowercase scheme, no restricted character, at most 512 characters.

    The scheme keeps only lowercase letters and digits (Prefect's rule);
    restricted characters become ``_``; a key still too long keeps its start
    and ends with a digest of the whole location, so it stays unique and stable.
    """
    scheme, separator, rest = location.partition("://")
    scheme = re.sub("[^a-z0-9]", "", scheme.lower())
    if not separator or not scheme:
        raise ValueError(f"an asset location needs a scheme (file://, s3://, ...): {location!r}")
    key = scheme + "://" + "".join("_" if char in RESTRICTED_ASSET_CHARACTERS else char for char in rest)
    if len(key) > MAX_ASSET_KEY_LENGTH:
        digest = hashlib.sha256(location.encode("utf-8")).hexdigest()[:16]
        key = key[: MAX_ASSET_KEY_LENGTH - len(digest) - 1] + "~" + digest
    return key


def without_credentials(url: str) -> str:
    """``url`` without ``user:password@``, query and fragment (where keys, tokens and signatures travel)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def location_url(destination: Destination, path: str) -> str:
    """Where ``path`` (a path on ``destination``) is, as a URL without credentials.

    Local: ``file://`` and the absolute path. Elsewhere: the destination's URL
    as given (the last target of a ``cache::s3://...`` chain), without
    credentials, query or fragment, followed by ``path`` relative to it.
    """
    if destination.is_local:
        return "file://" + path.rstrip("/")
    base = without_credentials(destination.url.rpartition("::")[2]).rstrip("/")
    relative = posixpath.relpath(path, destination.root)
    return base if relative == "." else f"{base}/{relative}"


def account_asset_key(web_address: str) -> str:
    """``postdicom://<host>[:<port>]`` of the account's web address: no user, password or path."""
    parts = urlsplit(str(web_address))
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError("the credentials' web_address has no host to name the account's asset by")
    port = f":{parts.port}" if parts.port else ""
    return valid_asset_key(f"{ACCOUNT_SCHEME}://{host}{port}")


def account_asset(credentials: PostDicomCredentials) -> Asset:
    """The PostDICOM account as an asset (its studies): the upstream of the tables, what uploads materialize."""
    key = account_asset_key(credentials.web_address)
    host = key.removeprefix(f"{ACCOUNT_SCHEME}://")
    return Asset(
        key=key,
        properties=AssetProperties(
            name=f"PostDICOM account {host}",
            description="The studies of a PostDICOM account (DICOMweb), named by its host only.",
        ),
    )


def table_asset_key(destination: Destination, table: str) -> str:
    """The key of ``table`` exported to ``destination``: its location, e.g. ``file:///data/export/orders``."""
    return valid_asset_key(location_url(destination, destination.path(table)))


def table_asset(destination: Destination, table: str) -> Asset:
    return Asset(
        key=table_asset_key(destination, table),
        properties=AssetProperties(name=f"{table} (postdicom-flows export)", description=TABLE_DESCRIPTION),
    )


def table_metadata(destination: Destination, table: str, partitions: Iterable[CommittedPartition], run_id: str) -> dict[str, Any]:
    """What a table's materialization event carries: dates, rows per date, schema version, run, manifests."""
    rows: dict[dt.date, int] = {p.export_date: p.rows for p in partitions if p.table == table}
    dates = sorted(rows)
    return {
        "export_dates": [day.isoformat() for day in dates],
        "rows_per_date": {day.isoformat(): rows[day] for day in dates},
        "rows": sum(rows.values()),
        "schema_version": SCHEMA_VERSION,
        "flow_run_id": run_id,
        "manifests": {day.isoformat(): location_url(destination, destination.manifest_path(table, day)) for day in dates},
    }


def _add_metadata(metadata: Mapping[str, Mapping[str, Any]]) -> None:
    """The materializing task's body: the data is already written, this attaches what the events carry."""
    for key, values in metadata.items():
        add_asset_metadata(key, dict(values))


def materialize_export_tables(
    credentials: PostDicomCredentials,
    destination: Destination,
    tables: Iterable[str],
    partitions: Iterable[CommittedPartition],
    run_id: str,
) -> None:
    """Record the committed tables as materialized from the account (one task run, never cached).

    A task made per run, because the assets (their keys) depend on the
    destination; not cached, because a cached task emits no materialization.
    """
    committed = list(partitions)
    assets = {table: table_asset(destination, table) for table in tables}
    metadata = {asset.key: table_metadata(destination, table, committed, run_id) for table, asset in assets.items()}
    recorder = materialize(
        *assets.values(),
        by=MATERIALIZED_BY,
        asset_deps=[account_asset(credentials)],
        name="materialize-export-tables",
        cache_policy=NO_CACHE,
        persist_result=False,
    )(_add_metadata)
    recorder(metadata)


def materialize_account_studies(credentials: PostDicomCredentials, counts: Mapping[str, int]) -> None:
    """Record that an upload changed the account's studies (when it stored any file): file counts per status."""
    if not counts.get("stored"):
        return
    account = account_asset(credentials)
    recorder = materialize(
        account, by=MATERIALIZED_BY, name="materialize-account-studies", cache_policy=NO_CACHE, persist_result=False
    )(_add_metadata)
    recorder({account.key: {"files": dict(counts), "flow_run_id": str(flow_run.id or "")}})


__all__ = [
    "account_asset",
    "account_asset_key",
    "materialize_account_studies",
    "materialize_export_tables",
    "table_asset_key",
    "valid_asset_key",
]
