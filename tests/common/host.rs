//! A `sluice run` process in the background, driven as a user would: started,
//! signalled, killed, waited for, its log read.

use super::kafka::unique;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `sluice run` in the background, its stderr in a file.
pub struct Host {
    pub child: Child,
    stderr: PathBuf,
}

impl Host {
    pub fn start(pipeline: &Path) -> Host {
        Host::start_with(pipeline, &[])
    }

    /// With more arguments to `sluice run` (`--admin 127.0.0.1:0`, ...).
    pub fn start_with(pipeline: &Path, args: &[&str]) -> Host {
        let stderr = pipeline.with_extension(format!("{}.stderr", unique("run")));
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--no-progress"])
            .args(args)
            .arg(pipeline)
            // SLUICE_TEST_LOG=debug shows the hosts' commits in failures.
            .env(
                "SLUICE_LOG",
                std::env::var("SLUICE_TEST_LOG").unwrap_or("info".into()),
            )
            .env(
                "SLUICE_CACHE_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Host { child, stderr }
    }

    /// With an admin listener (`args` has its `--admin ADDR`; port 0 takes a free
    /// one): the host, once listening, and the address it logged.
    pub fn start_listening(pipeline: &Path, args: &[&str]) -> (Host, String) {
        let mut host = Host::start_with(pipeline, args);
        host.wait_log(60, "the admin listener", |l| {
            l.contains("admin listener on http://")
        });
        let addr = host
            .log()
            .split("admin listener on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the address follows")
            .to_owned();
        (host, addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Wait until `done` holds for the log, or panic after `secs`.
    pub fn wait_log(&mut self, secs: u64, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(&self.log()) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sluice exited ({status}) before {what}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} after {secs}s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until `path` has `n` lines, or panic after a minute.
    pub fn wait_lines(&self, path: &Path, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while lines(path) < n {
            assert!(
                Instant::now() < deadline,
                "{} has {} lines, not {n}:\n{}",
                path.display(),
                lines(path),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Partitions in the newest assignment it logged.
    pub fn assigned(log: &str) -> Option<usize> {
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("partitions assigned: "))?;
        let list = line.split("partitions assigned: ").nth(1)?;
        Some(if list.trim() == "none" {
            0
        } else {
            list.split(", ").count()
        })
    }

    pub fn signal(&self, which: &str) {
        let ok = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {which}");
    }

    /// The exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Wait for the exit; panics after `secs`.
    pub fn wait(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sluice still running after {secs}s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(mut self) {
        self.signal("-TERM");
        let status = self.wait(120);
        assert!(status.success(), "{status}:\n{}", self.log());
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines in a file (0 if it does not exist).
pub fn lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}
