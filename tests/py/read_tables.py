"""Reads floe tables with readers floe did not write: PyIceberg 0.12 (SqlCatalog over floe's
SQLite catalog) and DuckDB (over the Parquet files PyIceberg plans).

usage: read_tables.py DATA_DIR NAMESPACE.TABLE...
Prints one JSON object: {table: {"pyiceberg": [rows], "duckdb_ids": [ids], "files": n}}.
"""
import json
import sys

import duckdb
from pyiceberg.catalog.sql import SqlCatalog


def open_catalog(data_dir):
    return SqlCatalog(
        "floe",
        uri=f"sqlite:///{data_dir}/catalog.db",
        warehouse=f"file://{data_dir}/warehouse",
    )


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


def rows_of(arrow_table):
    rows = [plain(r) for r in arrow_table.to_pylist()]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def read(catalog, name):
    table = catalog.load_table(name)
    scan = table.scan()
    files = [task.file.file_path for task in scan.plan_files()]
    out = {"pyiceberg": rows_of(scan.to_arrow()), "files": len(files)}
    if files:
        paths = [f.removeprefix("file://") for f in files]
        con = duckdb.connect()
        query = f"SELECT id FROM read_parquet({paths!r}, union_by_name=true) ORDER BY id"
        out["duckdb_ids"] = [row[0] for row in con.sql(query).fetchall()]
    else:
        out["duckdb_ids"] = []
    return out


def main():
    data_dir, names = sys.argv[1], sys.argv[2:]
    catalog = open_catalog(data_dir)
    print(json.dumps({name: read(catalog, name) for name in names}))


if __name__ == "__main__":
    main()
