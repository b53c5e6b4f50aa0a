//! The `floe` binary as a user meets it: quickstart, the README's PyIceberg snippet, --help,
//! describe and tables.

mod common;

use std::process::Command;

use common::*;

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Python block between the README's `pyiceberg-snippet` markers.
fn readme_snippet() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme.find("<!-- pyiceberg-snippet -->").expect("README has the snippet marker");
    let end = readme.find("<!-- /pyiceberg-snippet -->").expect("README closes the snippet");
    let block = &readme[start..end];
    let code_start = block.find("```python\n").unwrap() + "```python\n".len();
    let code_end = block.rfind("```").unwrap();
    block[code_start..code_end].to_string()
}

#[test]
fn quickstart_runs_on_a_fresh_data_dir_and_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = stdout(&floe(dir.path(), &["quickstart"]));
    assert!(first.contains("31 events read, 0 already committed"), "{first}");
    assert!(first.contains("| 7  | Dennis   | 700.50  | silver |"), "{first}");
    assert!(first.contains("SqlCatalog(\"floe\""), "{first}");
    let second = stdout(&floe(dir.path(), &["quickstart"]));
    assert!(second.contains("31 events read, 31 already committed"), "{second}");

    let tables = stdout(&floe(dir.path(), &["tables"]));
    assert!(tables.contains("shop.customers") && tables.contains("shop.orders"), "{tables}");
    let describe = stdout(&floe(dir.path(), &["describe", "shop.orders"]));
    assert!(describe.contains("key:       customer_id, line"), "{describe}");
    assert!(describe.contains("rows:      12"), "{describe}");
}

#[test]
fn readme_pyiceberg_snippet_opens_floe_tables() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&floe(dir.path(), &["quickstart"]));
    let out = Command::new(python()).arg("-c").arg(readme_snippet()).env("FLOE_DATA_DIR", dir.path()).output().unwrap();
    let printed = stdout(&out);
    assert!(printed.contains("shop.customers 17"), "{printed}");
    assert!(printed.contains("shop.orders 12"), "{printed}");
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        vec!["--help"],
        vec!["ingest", "--help"],
        vec!["sql", "--help"],
        vec!["tables", "--help"],
        vec!["describe", "--help"],
        vec!["quickstart", "--help"],
    ] {
        let out = stdout(&floe(dir.path(), &command));
        assert!(out.contains("Usage: floe"), "{command:?}: {out}");
    }
}

#[test]
fn sql_refuses_writes_and_reports_errors() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&floe(dir.path(), &["quickstart"]));
    let out = floe(dir.path(), &["sql", "DROP VIEW shop.customers_latest"]);
    assert!(!out.status.success());
    let out = floe(dir.path(), &["sql", "SELECT nope FROM shop.customers"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let csv = stdout(&floe(dir.path(), &["sql", "SELECT id FROM shop.customers_latest ORDER BY id LIMIT 2", "--format", "csv"]));
    assert_eq!(csv.trim(), "id\n1\n2");
}

#[test]
fn a_bad_config_names_file_key_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[tables.\"pg.a.b\"]\ncolumns = { x = \"decimal(99,2)\" }\n").unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "").unwrap();
    let out = floe(dir.path(), &["ingest", input.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("tables.\"pg.a.b\".columns.x") && err.contains("fix:"), "{err}");
}
