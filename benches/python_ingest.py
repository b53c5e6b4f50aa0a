"""Plain-Python ingest baseline for BENCHMARKS.md: json + pyarrow + PyIceberg append, 10k events per commit.

benches/ingest_throughput.rs writes the Debezium events it feeds floe to an NDJSON file and runs this
script over the same events, so both numbers come from the same run on the same machine.

usage: python benches/python_ingest.py EVENTS.ndjson WORKDIR [--batch 10000]

Each input line is one Kafka message: {"topic": ..., "key": "<JSON string>", "value": "<JSON string>"},
where key and value are JsonConverter documents with the schema envelope. The script decodes each
event, takes payload.after, adds floe's metadata columns and appends every --batch events to a
SqlCatalog (sqlite) table as one commit. The timer covers reading, decoding, Arrow building and the
appends, not table creation or the final row-count check.
Prints one JSON line: {"events": n, "seconds": s, "commits": c}. Exits non-zero if the table's row
count differs from the number of events.
"""
import argparse
import json
import os
import sys
import time

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

ICEBERG_SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=True),
    NestedField(2, "name", StringType(), required=False),
    NestedField(3, "status", StringType(), required=False),
    NestedField(4, "score", IntegerType(), required=False),
    NestedField(5, "amount", DoubleType(), required=False),
    NestedField(6, "active", BooleanType(), required=False),
    NestedField(7, "_op", StringType(), required=True),
    NestedField(8, "_op_ts", TimestamptzType(), required=True),
    NestedField(9, "_source_ts", TimestamptzType(), required=False),
    NestedField(10, "_src_partition", IntegerType(), required=True),
    NestedField(11, "_src_offset", LongType(), required=True),
    identifier_field_ids=[1],
)

TS = pa.timestamp("us", tz="UTC")
ARROW_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("status", pa.string()),
        pa.field("score", pa.int32()),
        pa.field("amount", pa.float64()),
        pa.field("active", pa.bool_()),
        pa.field("_op", pa.string(), nullable=False),
        pa.field("_op_ts", TS, nullable=False),
        pa.field("_source_ts", TS),
        pa.field("_src_partition", pa.int32(), nullable=False),
        pa.field("_src_offset", pa.int64(), nullable=False),
    ]
)
COLUMNS = ARROW_SCHEMA.names
DATA_COLUMNS = ("id", "name", "status", "score", "amount", "active")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events")
    parser.add_argument("workdir")
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()

    workdir = os.path.abspath(args.workdir)
    os.makedirs(os.path.join(workdir, "warehouse"), exist_ok=True)
    catalog = SqlCatalog(
        "bench",
        uri=f"sqlite:///{os.path.join(workdir, 'catalog.db')}",
        warehouse=f"file://{os.path.join(workdir, 'warehouse')}",
    )
    catalog.create_namespace_if_not_exists("bench")
    if catalog.table_exists("bench.customers"):
        catalog.drop_table("bench.customers")
    table = catalog.create_table("bench.customers", schema=ICEBERG_SCHEMA)

    start = time.perf_counter()
    events = commits = 0
    last_op_ts = 0
    batch = {c: [] for c in COLUMNS}

    def flush() -> None:
        nonlocal batch, commits
        table.append(pa.Table.from_pydict(batch, schema=ARROW_SCHEMA))
        commits += 1
        batch = {c: [] for c in COLUMNS}

    with open(args.events, "rb") as f:
        for offset, line in enumerate(f, start=1):
            message = json.loads(line)
            json.loads(message["key"])  # decoded like any consumer would, but the row comes from `after`
            payload = json.loads(message["value"])["payload"]
            after = payload["after"]
            for c in DATA_COLUMNS:
                batch[c].append(after.get(c))
            # strictly increasing µs: wall clock, bumped by one when it has not moved
            last_op_ts = max(time.time_ns() // 1000, last_op_ts + 1)
            source_ts = payload.get("source", {}).get("ts_ms")
            batch["_op"].append(payload["op"])
            batch["_op_ts"].append(last_op_ts)
            batch["_source_ts"].append(None if source_ts is None else source_ts * 1000)
            batch["_src_partition"].append(0)
            batch["_src_offset"].append(offset)
            events += 1
            if len(batch["id"]) >= args.batch:
                flush()
    if batch["id"]:
        flush()
    seconds = time.perf_counter() - start

    rows = table.refresh().scan(selected_fields=("id",)).to_arrow().num_rows
    print(json.dumps({"events": events, "seconds": seconds, "commits": commits}))
    if rows != events:
        print(f"row count mismatch: table has {rows}, wrote {events}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
