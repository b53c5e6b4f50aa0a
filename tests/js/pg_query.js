// Probe floe's Postgres wire endpoint with node-postgres (`pg`), the driver
// behind many JavaScript BI/dashboard tools.
//
// Setup (once):  cd tests/js && npm ci        (or: npm install)
// Run:           node tests/js/pg_query.js <host> <port> <user> <password> [database] [sku]
//
// Prints one JSON object per line:
//   {"step":"connect","ok":true}
//   {"step":"param","row":{"sku":"P-200","qty":"9223372036854775807"}}
//   {"step":"count","row":{"n":"9"}}
//   {"step":"<name>","error":"<message>","code":"<sqlstate>"}
//   {"step":"done","ok":<n>,"failed":<n>}
// Exit code: 0 if every step passed, 1 otherwise, 2 if the connection failed.
//
// pg returns int8/numeric as strings (to keep full precision), so the test
// side should compare `qty` and `n` as strings.

'use strict';

const path = require('path');
// Resolve `pg` from this directory's node_modules wherever node is started.
const { Client } = require(path.join(__dirname, 'node_modules', 'pg'));

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function main() {
  const [host, port, user, password, database = 'floe', skuArg] = process.argv.slice(2);
  if (!host || !port || !user || password === undefined) {
    process.stderr.write('usage: node pg_query.js <host> <port> <user> <password> [database] [sku]\n');
    process.exit(64);
  }

  const client = new Client({
    host,
    port: Number(port),
    user,
    password,
    database,
    application_name: 'pg_query.js',
    connectionTimeoutMillis: 10000,
    query_timeout: 30000,
  });

  let ok = 0;
  let failed = 0;

  try {
    await client.connect();
    out({ step: 'connect', ok: true });
    ok++;
  } catch (e) {
    out({ step: 'connect', error: String(e && e.message), code: e && e.code });
    out({ step: 'done', ok: 0, failed: 1 });
    process.exit(2);
  }

  async function step(name, fn) {
    try {
      await fn();
      ok++;
    } catch (e) {
      failed++;
      out({ step: name, error: String(e && e.message), code: e && e.code });
    }
  }

  let sku = skuArg;
  if (!sku) {
    await step('pick_sku', async () => {
      const r = await client.query('SELECT sku FROM depot.parts_latest ORDER BY sku LIMIT 1');
      if (r.rows.length === 0) throw new Error('depot.parts_latest is empty');
      sku = r.rows[0].sku;
      out({ step: 'pick_sku', sku });
    });
  }

  // Parameterised: pg sends Parse/Bind/Describe/Execute (extended protocol)
  // with the value bound as text.
  await step('param', async () => {
    const r = await client.query('SELECT sku, qty FROM depot.parts_latest WHERE sku = $1', [sku || 'P-200']);
    for (const row of r.rows) out({ step: 'param', row });
    out({ step: 'param', rowCount: r.rowCount, fields: r.fields.map((f) => [f.name, f.dataTypeID]) });
  });

  // No parameters: pg uses the simple query protocol.
  await step('count', async () => {
    const r = await client.query('SELECT count(*) AS n FROM depot.parts_latest');
    for (const row of r.rows) out({ step: 'count', row });
    out({ step: 'count', rowCount: r.rowCount, fields: r.fields.map((f) => [f.name, f.dataTypeID]) });
  });

  // Same count through the extended protocol (a named prepared statement).
  await step('count_prepared', async () => {
    const r = await client.query({ name: 'count_parts', text: 'SELECT count(*) AS n FROM depot.parts_latest', values: [] });
    for (const row of r.rows) out({ step: 'count_prepared', row });
  });

  try {
    await client.end();
  } catch (_) {
    // ignore
  }
  out({ step: 'done', ok, failed });
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  out({ step: 'fatal', error: String(e && e.stack) });
  process.exit(3);
});
