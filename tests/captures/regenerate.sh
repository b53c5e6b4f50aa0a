#!/usr/bin/env bash
# Regenerates the committed Debezium captures under tests/captures/ with real Debezium (3.6.3,
# embedded engine, pgoutput) against a local PostgreSQL 15, using the capture tool in
# ../shared/tools (setup once: `bash ../shared/tools/setup-debezium-env.sh`).
#
#   tests/captures/regenerate.sh            every capture
#   tests/captures/regenerate.sh types-s1   one capture
#
# Each line of CAPTURES is: name, workload, then the capture tool's options. The tests read
# The tool records the options and every connector property in each capture's meta.json.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${DEBEZIUM_PYTHON:-/tmp/debezium-venv/bin/python}"
TOOL="${DEBEZIUM_CAPTURE:-../../../shared/tools/debezium_capture.py}"

CAPTURES=(
  "types-s1          types.sql     --schemas true"
  "types-s2          types.sql     --schemas false"
  "types-modes-a     types.sql     --schemas true --decimal-handling string --time-precision adaptive --binary-handling base64 --interval-handling string --hstore-handling map"
  "types-modes-b     types.sql     --schemas true --decimal-handling double --time-precision connect --binary-handling hex"
  "evolution-s1      evolution.sql --schemas true"
  "evolution-s2      evolution.sql --schemas false"
  "extras-s1         extras.sql    --schemas true --include-unknown-datatypes true"
  "incompatible-s1   incompatible.sql --schemas true"
)

for line in "${CAPTURES[@]}"; do
  read -r name workload options <<<"$line"
  if [ $# -gt 0 ] && [[ ! " $* " =~ " $name " ]]; then continue; fi
  echo "==> $name: $workload $options"
  rm -rf "$name"
  # shellcheck disable=SC2086
  "$PYTHON" "$TOOL" "$name" --workload "workloads/$workload" --truth-names table $options
  rm -f "$name/debezium.log"
done
