"""Writes a table through floe's Iceberg REST catalog with PyIceberg's RestCatalog, as USER.

usage: rest_catalog_writes.py URI USER PASSWORD
Creates namespace `scratch` and table `scratch.events` (id long, name string), appends rows 1
and 2, then row 3 from a handle loaded before that append (a stale base: the catalog must
refuse it, and PyIceberg then retries on the current metadata), and row 3 again from a fresh
handle. Prints {"rows": n, "sum": s, "parents": [each snapshot's parent is the one before],
"refused": how often PyIceberg was told its base had moved}, or {"error": "..."}.
"""
import json
import logging
import sys

import pyarrow as pa
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType

uri, user, password = sys.argv[1:]
arrow_schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])


class Refusals(logging.Handler):
    """Counts PyIceberg's "Commit failed due to a concurrent update, retrying" warnings."""

    count = 0

    def emit(self, record):
        if "concurrent update" in record.getMessage():
            Refusals.count += 1


logging.getLogger("pyiceberg").addHandler(Refusals())


def rows(ids):
    return pa.Table.from_pylist([{"id": i, "name": f"n{i}"} for i in ids], schema=arrow_schema)


try:
    catalog = RestCatalog("floe", uri=uri, credential=f"{user}:{password}")
    catalog.create_namespace("scratch")
    schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "name", StringType(), required=False))
    table = catalog.create_table("scratch.events", schema=schema)
    stale = catalog.load_table("scratch.events")
    table.append(rows([1, 2]))
    stale.append(rows([3]))
    catalog.load_table("scratch.events").append(rows([3]))
    fresh = catalog.load_table("scratch.events")
    data = fresh.scan().to_arrow()
    snapshots = sorted(fresh.metadata.snapshots, key=lambda s: s.sequence_number)
    parents = [s.parent_snapshot_id == (p.snapshot_id if p else None) for p, s in zip([None] + snapshots, snapshots)]
    answer = {"rows": data.num_rows, "sum": pa.compute.sum(data["id"]).as_py(), "parents": parents, "refused": Refusals.count}
except Exception as e:
    answer = {"error": f"{type(e).__name__}: {e}"}
print(json.dumps(answer))
