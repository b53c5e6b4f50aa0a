"""Runs one parameterised query through psycopg 3 (the extended protocol, $1 placeholders).

usage: pg_query.py PORT USER PASSWORD SQL [PARAM ...]   (a PARAM of digits is sent as an int)
Prints {"columns": [...], "rows": [[...], ...]}, values as JSON (others as strings).
"""
import json
import sys

import psycopg

port, user, password, sql, *params = sys.argv[1:]
values = [int(p) if p.isdigit() else p for p in params]
with psycopg.connect(host="127.0.0.1", port=int(port), user=user, password=password, dbname="floe") as conn:
    cursor = conn.execute(sql, values, prepare=True)
    columns = [d.name for d in cursor.description]
    rows = [[v if isinstance(v, (int, float, str, bool, type(None))) else str(v) for v in row] for row in cursor.fetchall()]
print(json.dumps({"columns": columns, "rows": rows}))
