"""Reads a whole floe table with PyIceberg through floe's SQLite catalog, its files in an
S3-compatible bucket: the endpoint and credentials come from the standard AWS variables
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).

usage: read_s3_table.py DATA_DIR NAMESPACE.TABLE
Prints {"rows": n, "columns": [name, ...]}.
"""
import json
import os
import sys

from pyiceberg.catalog.sql import SqlCatalog

data_dir, name = sys.argv[1], sys.argv[2]
catalog = SqlCatalog(
    "floe",
    uri=f"sqlite:///{data_dir}/catalog.db",
    **{
        "s3.endpoint": os.environ["AWS_ENDPOINT_URL"],
        "s3.region": os.environ["AWS_REGION"],
        "s3.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
        "s3.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
    },
)
table = catalog.load_table(name).scan().to_arrow()
print(json.dumps({"rows": table.num_rows, "columns": table.column_names}))
