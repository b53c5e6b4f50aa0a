//! A long-running `floe` command (serve, sink) whose output the test reads while it runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    /// `floe --data-dir <dir> --log info <args>`, stdout and stderr into `<dir>/<name>.log`.
    pub fn start(dir: &Path, name: &str, args: &[&str]) -> Running {
        Running::start_with_env(dir, name, args, &[])
    }

    /// As [`Running::start`], with more environment variables.
    pub fn start_with_env(dir: &Path, name: &str, args: &[&str], env: &[(&str, String)]) -> Running {
        let log = dir.join(format!("{name}.log"));
        // One open file for both streams, so that neither writes over the other.
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_floe"))
            .arg("--data-dir")
            .arg(dir)
            .args(["--log", "info"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("floe starts");
        Running { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first log line containing `needle`, waiting up to `timeout` for it.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            let exited = self.child.try_wait().unwrap();
            assert!(exited.is_none() && Instant::now() < deadline, "no line with {needle:?} (exited: {exited:?}):\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL; returns the log.
    pub fn crash(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.log()
    }

    /// SIGTERM, then waits up to 30 s for the process to end; returns the log.
    pub fn stop(mut self) -> String {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "floe did not stop within 30 s of SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        self.log()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server process of a test (a broker, an object store), killed when the test ends with it.
pub struct KilledOnDrop(pub Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What follows `marker` on the first line of a server's `output` that has it (its address,
/// once it listens), waiting up to a minute; the rest of the output is read and dropped, so
/// the server never blocks on a full pipe.
pub fn wait_for_line(output: impl std::io::Read + Send + 'static, marker: &str, server: &str) -> String {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(output).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        assert!(Instant::now() < deadline, "{server} printed no {marker:?} within 60 s");
        let line = lines.next().unwrap_or_else(|| panic!("{server} ended before printing {marker:?}")).expect("a line");
        if let Some(rest) = line.split(marker).nth(1) {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    found
}
