"""Reads floe's tables through floe's Iceberg REST catalog with PyIceberg's RestCatalog, logging
in with OAuth client credentials (a floe user name and password).

usage: rest_catalog.py URI USER PASSWORD NAMESPACE.TABLE [KEY=VALUE ...]
(KEY=VALUE: more catalog properties, e.g. s3.endpoint=http://127.0.0.1:9000)
Prints {"namespaces": [...], "tables": [...], "rows": n (of the table), "create": "<error>"},
or {"error": "..."} when logging in or listing fails; a table that cannot be loaded gives
"rows": null and "load": "<error>".
"""
import json
import sys

from pyiceberg.catalog.rest import RestCatalog

uri, user, password, name = sys.argv[1:5]
properties = dict(arg.split("=", 1) for arg in sys.argv[5:])
try:
    catalog = RestCatalog("floe", uri=uri, credential=f"{user}:{password}", **properties)
    namespaces = [".".join(n) for n in catalog.list_namespaces()]
    namespace = name.rsplit(".", 1)[0]
    answer = {"namespaces": namespaces, "tables": sorted(".".join(t) for t in catalog.list_tables(namespace))}
    try:
        answer["rows"] = catalog.load_table(name).scan().to_arrow().num_rows
    except Exception as e:  # the refusal is the answer under test
        answer["rows"], answer["load"] = None, str(e)
    try:
        catalog.create_namespace("scratch")
        answer["create"] = "created"
    except Exception as e:
        answer["create"] = str(e)
except Exception as e:
    answer = {"error": str(e)}
print(json.dumps(answer))
