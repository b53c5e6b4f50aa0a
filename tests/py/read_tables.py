"""Reads floe tables with readers floe did not write: PyIceberg 0.12 (SqlCatalog over floe's
SQLite catalog) and DuckDB (over the Parquet files PyIceberg plans, applying their
position-delete files itself: DuckDB's iceberg extension cannot be downloaded offline).

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
    tasks = list(scan.plan_files())
    files = [task.file.file_path for task in tasks]
    deletes = sorted({d.file_path for task in tasks for d in task.delete_files})
    out = {"pyiceberg": rows_of(scan.to_arrow()), "files": len(files), "delete_files": len(deletes)}
    out["duckdb_ids"] = duckdb_ids(files, deletes) if files else []
    return out


def local(path):
    return path.removeprefix("file://")


def duckdb_ids(files, deletes):
    con = duckdb.connect()
    data = f"read_parquet({[local(f) for f in files]!r}, union_by_name=true, filename=true, file_row_number=true)"
    if not deletes:
        return [row[0] for row in con.sql(f"SELECT id FROM {data} ORDER BY id").fetchall()]
    # Position deletes name data files by their full URI and rows by position in the file.
    query = f"""
        SELECT d.id FROM {data} d
        ANTI JOIN read_parquet({[local(f) for f in deletes]!r}) del
          ON d.filename = replace(del.file_path, 'file://', '') AND d.file_row_number = del.pos
        ORDER BY d.id"""
    return [row[0] for row in con.sql(query).fetchall()]


def main():
    data_dir, names = sys.argv[1], sys.argv[2:]
    catalog = open_catalog(data_dir)
    print(json.dumps({name: read(catalog, name) for name in names}))


if __name__ == "__main__":
    main()
