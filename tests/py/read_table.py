"""Reads a whole floe table with PyIceberg, every column, through floe's SQLite catalog. With
AWS_ENDPOINT_URL set, its files are in an S3-compatible bucket, reached with the standard AWS
variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).

usage: read_table.py DATA_DIR NAMESPACE.TABLE
Prints {"rows": n, "columns": [name, ...]}.
"""
import json
import os
import sys

from pyiceberg.catalog.sql import SqlCatalog

data_dir, name = sys.argv[1], sys.argv[2]
s3 = {}
if "AWS_ENDPOINT_URL" in os.environ:
    s3 = {
        "s3.endpoint": os.environ["AWS_ENDPOINT_URL"],
        "s3.region": os.environ["AWS_REGION"],
        "s3.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
        "s3.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
    }
catalog = SqlCatalog("floe", uri=f"sqlite:///{data_dir}/catalog.db", warehouse=f"file://{data_dir}/warehouse", **s3)
table = catalog.load_table(name).scan().to_arrow()
print(json.dumps({"rows": table.num_rows, "columns": table.column_names}))
