"""Row count and distinct keys of a floe table, read by PyIceberg through floe's SQLite catalog.

usage: table_keys.py DATA_DIR NAMESPACE.TABLE KEY_COLUMN...
Prints {"rows": n, "keys": [[k1, k2, ...], ...]} with keys sorted.
"""
import json
import sys

from pyiceberg.catalog.sql import SqlCatalog

data_dir, name, key = sys.argv[1], sys.argv[2], sys.argv[3:]
catalog = SqlCatalog("floe", uri=f"sqlite:///{data_dir}/catalog.db", warehouse=f"file://{data_dir}/warehouse")
table = catalog.load_table(name).scan(selected_fields=tuple(key)).to_arrow()
keys = sorted({tuple(row[k] for k in key) for row in table.to_pylist()})
print(json.dumps({"rows": table.num_rows, "keys": [list(k) for k in keys]}))
