"""Talks to floe's Flight SQL endpoint through the ADBC Flight SQL driver (the Go driver that
DBeaver's, Python's and R's ADBC use), with a user name and password (handshake, then token).

usage: flight_query.py URI USER PASSWORD query SQL [PARAM ...]   (a PARAM of digits is an int)
       flight_query.py URI USER PASSWORD objects                 (catalogs, schemas, tables)
       flight_query.py URI USER PASSWORD schema SCHEMA TABLE     (a table's Arrow schema)
Prints JSON: {"columns": [...], "types": [...], "rows": [[...], ...]} for a query,
{"tables": [[schema, table, type], ...]} for objects, {"columns": [...]} for schema, and
{"error": "..."} when the driver raises. With $FLOE_TLS_ROOT_CERTS (a PEM file), a
grpc+tls:// server's certificate is verified against it.
"""
import json
import os
import sys

import adbc_driver_flightsql.dbapi as flightsql

uri, user, password, what, *rest = sys.argv[1:]


def run(conn):
    if what == "query":
        sql, *params = rest
        values = [int(p) if p.isdigit() else p for p in params]
        with conn.cursor() as cursor:
            cursor.execute(sql, values or None)
            table = cursor.fetch_arrow_table()
        rows = [[v if isinstance(v, (int, float, str, bool, type(None))) else str(v) for v in row.values()] for row in table.to_pylist()]
        return {"columns": table.column_names, "types": [str(t) for t in table.schema.types], "rows": rows}
    if what == "objects":
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        tables = []
        for catalog in objects:
            for schema in catalog["catalog_db_schemas"] or []:
                for table in schema["db_schema_tables"] or []:
                    tables.append([schema["db_schema_name"], table["table_name"], table["table_type"]])
        return {"catalogs": [c["catalog_name"] for c in objects], "tables": sorted(tables)}
    if what == "schema":
        schema, table = rest
        return {"columns": conn.adbc_get_table_schema(table, db_schema_filter=schema).names}
    raise SystemExit(f"unknown request {what!r}")


try:
    options = {"username": user, "password": password}
    if os.environ.get("FLOE_TLS_ROOT_CERTS"):
        with open(os.environ["FLOE_TLS_ROOT_CERTS"]) as pem:
            options["adbc.flight.sql.client_option.tls_root_certs"] = pem.read()
    with flightsql.connect(uri, db_kwargs=options) as conn:
        answer = run(conn)
except Exception as e:  # the driver's errors are the answer under test
    answer = {"error": str(e)}
print(json.dumps(answer), flush=True)
# The Go runtime inside the driver can abort at interpreter exit; the answer is out.
os._exit(0)
