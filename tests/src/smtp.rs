//! A real SMTP server for tests: `tests/smtp/sink.py` (Python's aiosmtpd) on loopback, with
//! STARTTLS required and the dev PKI's hub certificate (for `localhost`) when asked. Each
//! message it accepts is a file; a test reads them whole. The server can be stopped and started
//! again on the same port, as a relay that went away. Where Python lacks aiosmtpd (`.ci/run`
//! installs it), the first test installs it with pip into a folder of its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the server may take to listen.
const START_TIME_MAX: Duration = Duration::from_secs(20);

pub struct SmtpSink {
    pub port: u16,
    /// How long the server waits before it takes each message (a slow relay).
    pub delay: Duration,
    out: tempfile::TempDir,
    tls: Option<(PathBuf, PathBuf)>,
    child: Option<Child>,
}

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The message as sent (headers, a blank line, the body), CRLF line ends.
    pub raw: String,
    /// The envelope's recipients (RCPT TO).
    pub recipients: Vec<String>,
}

impl Mail {
    /// The header lines, unfolded, each as (name, value).
    pub fn headers(&self) -> Vec<(String, String)> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push_str(line.trim_start());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.to_owned(), value.trim().to_owned()));
            }
        }
        headers
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// The body, with quoted-printable soft breaks and escapes undone.
    pub fn body(&self) -> String {
        let body = self.raw.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        decode_quoted_printable(body)
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

/// The aiosmtpd version the tests run against.
const AIOSMTPD: &str = "aiosmtpd==1.4.6";

/// Where aiosmtpd is for the server's Python: `None` when Python has it already, else a folder
/// it was installed into (once per machine; installs racing each other each finish in a folder
/// of their own, and the first renamed into place wins).
fn aiosmtpd_path() -> Option<&'static Path> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let present = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if present {
            return None;
        }
        let dir = std::env::temp_dir().join("vix-test-python-aiosmtpd-1.4.6");
        if !dir.join("aiosmtpd").is_dir() {
            let partial = dir.with_extension(format!("partial-{}", std::process::id()));
            let installed = std::process::Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg("--target")
                .arg(&partial)
                .arg(AIOSMTPD)
                .status()
                .expect("python3 -m pip");
            assert!(installed.success(), "pip install {AIOSMTPD} failed");
            if std::fs::rename(&partial, &dir).is_err() {
                // Another test process put its copy in place first.
                let _ = std::fs::remove_dir_all(&partial);
            }
        }
        Some(dir)
    })
    .as_deref()
}

impl SmtpSink {
    /// A server on a free port; with `tls`, STARTTLS is required and the certificate is the
    /// dev PKI's (at `pki`) for `localhost`.
    pub async fn start(pki: &Path, tls: bool) -> Self {
        Self::start_with(pki, tls, Duration::ZERO).await
    }

    /// Like [`Self::start`], a relay that waits `delay` before it takes each message.
    pub async fn start_with(pki: &Path, tls: bool, delay: Duration) -> Self {
        let tls = tls.then(|| {
            (
                pki.join(vix_certs_dev::files::HUB_CERT),
                pki.join(vix_certs_dev::files::HUB_KEY),
            )
        });
        let mut sink = Self {
            port: 0,
            delay,
            out: tempfile::Builder::new()
                .prefix("vix-test-smtp-")
                .tempdir()
                .expect("temporary folder"),
            tls,
            child: None,
        };
        sink.run().await;
        sink
    }

    /// Starts the server (again) on its port.
    pub async fn run(&mut self) {
        assert!(self.child.is_none(), "the SMTP server already runs");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/sink.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg("--out")
            .arg(self.out.path())
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--delay-ms")
            .arg(self.delay.as_millis().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some((cert, key)) = &self.tls {
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some(path) = aiosmtpd_path() {
            command.env("PYTHONPATH", path);
        }
        let mut child = command.spawn().expect("python3 tests/smtp/sink.py");
        let stdout = child.stdout.take().expect("the server's stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(START_TIME_MAX, lines.next_line())
            .await
            .expect("the SMTP server listens in time")
            .expect("the SMTP server's output")
            .expect("the SMTP server says where it listens (is aiosmtpd installed?)");
        self.port = line
            .strip_prefix("listening ")
            .and_then(|port| port.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected SMTP server output: {line}"));
        self.child = Some(child);
    }

    /// Stops the server (its port refuses connections until [`Self::run`]).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("stopping the SMTP server");
        }
    }

    /// Every message received so far, in the order received.
    pub fn messages(&self) -> Vec<Mail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .expect("the SMTP server's folder")
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| Mail {
                raw: std::fs::read_to_string(path).expect("a received message"),
                recipients: std::fs::read_to_string(path.with_extension("rcpt"))
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect(),
            })
            .collect()
    }
}
