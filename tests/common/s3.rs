//! An S3-compatible server for tests: moto's (`moto[server]`, installed into the test venv by
//! `.ci/test`) on a free loopback port. Without it these tests fail; they do not skip.
//! The object-storage bench can also run on s3s-fs (crates.io), which serves requests
//! concurrently where moto answers one at a time.

use std::process::{Command, Stdio};

use super::process::{wait_for_line, KilledOnDrop};

pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    _child: KilledOnDrop,
}

impl S3Server {
    pub fn moto() -> S3Server {
        let server = super::python().with_file_name("moto_server");
        let mut child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts ({e}); .ci/test installs moto[server] into the test venv", server.display()));
        // moto prints " * Running on http://127.0.0.1:PORT" on stderr once it listens.
        let endpoint = wait_for_line(child.stderr.take().expect("stderr"), "Running on ", "moto");
        S3Server { endpoint, _child: KilledOnDrop(child) }
    }

    /// s3s-fs (`cargo install s3s-fs --features binary`) serving the directory `root`, with
    /// the same credentials as moto's.
    pub fn s3s_fs(binary: &std::path::Path, root: &std::path::Path) -> S3Server {
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", "0", "--access-key", "testing", "--secret-key", "testing"])
            .arg(root)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", binary.display()));
        let endpoint = wait_for_line(child.stdout.take().expect("stdout"), "server is running at ", "s3s-fs");
        S3Server { endpoint, _child: KilledOnDrop(child) }
    }

    /// The environment a client of this server runs with: test credentials, a region, and the
    /// endpoint, as the standard AWS variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            // Never ask an instance-metadata service for credentials.
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    pub fn create_bucket(&self, bucket: &str) {
        let out = Command::new("curl").args(["-s", "-f", "-X", "PUT", &format!("{}/{bucket}", self.endpoint)]).output().expect("curl runs");
        assert!(out.status.success(), "creating bucket {bucket}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Every key in `bucket` under `prefix`.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let url = format!("{}/{bucket}?list-type=2&prefix={prefix}&max-keys=100000", self.endpoint);
        let out = Command::new("curl").args(["-s", "-f", &url]).output().expect("curl runs");
        let xml = String::from_utf8_lossy(&out.stdout);
        xml.split("<Key>").skip(1).filter_map(|s| s.split("</Key>").next()).map(str::to_string).collect()
    }
}
