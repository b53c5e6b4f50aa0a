"""DuckDB doing floe's latest-per-key rewrite over the same Parquet files, for benches/compaction.rs.

usage: duckdb_compact.py OUT.parquet FILE...
Prints {"seconds": s, "rows_out": n, "peak_rss_kib": k}.
"""
import json
import resource
import sys
import time

import duckdb

out, files = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
con = duckdb.connect()
con.sql(
    f"""COPY (SELECT * FROM read_parquet({files!r})
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY _op_ts DESC, _src_partition DESC, _src_offset DESC) = 1
            AND _op NOT IN ('d', 't')
        ORDER BY id) TO '{out}' (FORMAT parquet, COMPRESSION zstd)"""
)
seconds = time.perf_counter() - start
rows = con.sql(f"SELECT count(*) FROM read_parquet('{out}')").fetchall()[0][0]
print(json.dumps({"seconds": seconds, "rows_out": rows, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
