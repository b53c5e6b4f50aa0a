"""Lists what SQLAlchemy's inspector sees through floe's Postgres wire endpoint (psycopg 3).

usage: sqlalchemy_inspect.py PORT USER PASSWORD SCHEMA [RELATION]
Prints {"schemas": [...], "tables": [...], "views": [...]}, and with RELATION also
"columns": [[name, type, nullable], ...] and "primary_key": [...] of it.
"""
import json
import sys

import sqlalchemy

port, user, password, schema, *relation = sys.argv[1:]
engine = sqlalchemy.create_engine(f"postgresql+psycopg://{user}:{password}@127.0.0.1:{port}/floe")
inspector = sqlalchemy.inspect(engine)
seen = {
    "schemas": sorted(inspector.get_schema_names()),
    "tables": sorted(inspector.get_table_names(schema=schema)),
    "views": sorted(inspector.get_view_names(schema=schema)),
}
for name in relation:
    columns = inspector.get_columns(name, schema=schema)
    seen["columns"] = [[c["name"], str(c["type"]), c["nullable"]] for c in columns]
    seen["primary_key"] = inspector.get_pk_constraint(name, schema=schema)["constrained_columns"]
print(json.dumps(seen))
