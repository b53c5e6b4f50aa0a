"""Reads a whole floe table with PyIceberg, every column, through floe's SQLite catalog.

usage: read_table.py DATA_DIR NAMESPACE.TABLE
Prints {"rows": n, "columns": [name, ...]}.
"""
import json
import sys

from pyiceberg.catalog.sql import SqlCatalog

data_dir, name = sys.argv[1], sys.argv[2]
catalog = SqlCatalog("floe", uri=f"sqlite:///{data_dir}/catalog.db", warehouse=f"file://{data_dir}/warehouse")
table = catalog.load_table(name).scan().to_arrow()
print(json.dumps({"rows": table.num_rows, "columns": table.column_names}))
