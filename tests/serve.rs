//! `floe serve` compacts on its schedule and exports Prometheus metrics.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn serve_compacts_on_schedule_and_exports_metrics() {
    let dir = tempfile::tempdir().unwrap();
    assert!(floe(dir.path(), &["quickstart"]).status.success());
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["--data-dir", dir.path().to_str().unwrap(), "serve", "--schedule", "* * * * * *"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut metrics = String::new();
    while Instant::now() < deadline {
        metrics = http_get(port, "/metrics").unwrap_or_default();
        if metrics.contains("outcome=\"compacted\"") && metrics.contains("outcome=\"skipped\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(metrics.contains("floe_compactions_total{table=\"shop.customers\",outcome=\"compacted\"} 1"), "{metrics}");
    assert!(metrics.contains("floe_compaction_rows_out_total{table=\"shop.customers\"} 9"), "{metrics}");
    assert!(metrics.contains("outcome=\"skipped\""), "later runs skip: nothing new arrived\n{metrics}");
    assert!(status.success(), "serve stops cleanly on SIGTERM");

    let describe = floe(dir.path(), &["describe", "shop.customers"]);
    let text = String::from_utf8_lossy(&describe.stdout);
    assert!(text.contains("rows 17 → 9"), "{text}");
    let latest = floe_sql(dir.path(), "SELECT count(*) AS n FROM shop.customers_latest");
    assert_eq!(latest[0]["n"], 9);
}
