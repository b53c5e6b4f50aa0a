"""Lists what SQLAlchemy's inspector sees through floe's Postgres wire endpoint (psycopg 3).

usage: sqlalchemy_inspect.py PORT USER PASSWORD SCHEMA
Prints {"schemas": [...], "tables": [...], "views": [...]}.
(Columns and primary keys through the inspector are not served yet: its column query calls
json_build_object and pg_get_serial_sequence and nests correlated subqueries in CASE, which
DataFusion lacks, and primary keys need pg_index and pg_constraint rows floe does not serve yet.)
"""
import json
import sys

import sqlalchemy

port, user, password, schema = sys.argv[1:]
engine = sqlalchemy.create_engine(f"postgresql+psycopg://{user}:{password}@127.0.0.1:{port}/floe")
inspector = sqlalchemy.inspect(engine)
print(json.dumps({
    "schemas": sorted(inspector.get_schema_names()),
    "tables": sorted(inspector.get_table_names(schema=schema)),
    "views": sorted(inspector.get_view_names(schema=schema)),
}))
