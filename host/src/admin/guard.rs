//! Who may change a running host through the admin listener.
//!
//! Reading (`/`, `/status`, `/metrics`, `/healthz`, `/readyz`) is open on loopback;
//! a route that changes the host (`POST /plugins/swap`) is not, because "loopback"
//! also means every local user and, through the browser, every web page:
//! - **a token on every mutating route**: the configured one, or, when none is, one
//!   made at start and written to a file only the host's user can read
//!   ([`token_file`]); `sluice plugin swap` finds it there;
//! - **`Host` checked** on a loopback listener: only an IP literal or `localhost`, so
//!   a DNS-rebound name (`evil.example` resolving to 127.0.0.1) is refused;
//! - **`Origin` checked** on mutating routes: a browser's cross-origin POST names
//!   the page it came from, and is refused;
//! - **a plugin's content type required** (`application/wasm`), which no page can
//!   send without a CORS preflight this listener never answers.

use hyper::header::{HOST, ORIGIN};
use hyper::Request;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The content type `POST /plugins/swap` takes.
pub const WASM_CONTENT_TYPE: &str = "application/wasm";

/// Where the token made for a listener on `addr` is written:
/// `$XDG_STATE_HOME/sluice/admin/<ip>_<port>.token` (default
/// `~/.local/state/sluice/admin/`), in a folder only its user can enter.
pub fn token_file(addr: SocketAddr) -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    Some(
        state
            .join("sluice/admin")
            .join(format!("{ip}_{}.token", addr.port())),
    )
}

/// A fresh token: 32 random bytes from the OS (`/dev/urandom`), hex.
pub fn new_token() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("no randomness for the admin token (/dev/urandom): {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Write `token` to `path`, readable by this user only (folder 0700, file 0600).
pub fn write_token(path: &std::path::Path, token: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let err =
        |e: std::io::Error| format!("cannot write the admin token to {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    // A file left by a run that was killed: replaced, never written through.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(token.as_bytes()).map_err(err)?;
    file.write_all(b"\n").map_err(err)
}

/// Token files this process made, removed at exit (also on the path that quits at
/// once, which runs no destructors).
static MADE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Make a token for the listener at `addr` and write it to its [`token_file`]
/// (removed by [`remove_made_tokens`]).
pub fn make_token(addr: SocketAddr) -> Result<(String, PathBuf), String> {
    let token = new_token()?;
    let file = token_file(addr).ok_or("neither XDG_STATE_HOME nor HOME is set")?;
    write_token(&file, &token)?;
    MADE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(file.clone());
    Ok((token, file))
}

/// Remove every token file this process made (when the listener goes, or before
/// quitting at once).
pub fn remove_made_tokens() {
    for file in std::mem::take(&mut *MADE.lock().unwrap_or_else(|e| e.into_inner())) {
        let _ = std::fs::remove_file(file);
    }
}

/// The token written for the listener at `addr` by a host of this user's, if any.
pub fn read_token(addr: SocketAddr) -> Option<String> {
    let text = std::fs::read_to_string(token_file(addr)?).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Why a request's `Host` is refused on a loopback listener, if it is: only an IP
/// literal or `localhost` names this host; any other name reached it by DNS
/// rebinding or a proxy, not by a user of this machine.
pub fn host_refused<B>(req: &Request<B>) -> Option<String> {
    let Some(host) = req.headers().get(HOST) else {
        return None; // HTTP/1.0 without Host: not a browser
    };
    let host = host.to_str().unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let ok = name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok();
    (!ok).then(|| {
        format!(
            "Host `{host}` does not name this machine: use its address (127.0.0.1) or localhost"
        )
    })
}

/// Why a swap's body is refused, if it is: anything but a plugin's content type.
pub fn content_type_refused<B>(req: &Request<B>) -> Option<String> {
    let given = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or("").trim());
    (given != Some(WASM_CONTENT_TYPE))
        .then(|| format!("send the component as Content-Type: {WASM_CONTENT_TYPE}"))
}

/// Why a mutating request's `Origin` is refused, if it is: a page served from
/// anywhere but this listener.
pub fn origin_refused<B>(req: &Request<B>) -> Option<String> {
    let origin = req.headers().get(ORIGIN)?;
    let origin = origin.to_str().unwrap_or("");
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let same = origin
        .strip_prefix("http://")
        .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host));
    (!same).then(|| format!("requests from web pages (Origin `{origin}`) may not change this host"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method("POST").uri("/plugins/swap");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn only_this_machines_names_and_its_own_pages() {
        for ok in ["127.0.0.1:9464", "localhost:1", "[::1]:9464", "LOCALHOST"] {
            assert_eq!(host_refused(&req(&[("host", ok)])), None, "{ok}");
        }
        for bad in [
            "evil.example:9464",
            "127.0.0.1.nip.io:9464",
            "localhost.evil:80",
        ] {
            assert!(host_refused(&req(&[("host", bad)])).is_some(), "{bad}");
        }
        let same = req(&[
            ("host", "127.0.0.1:9464"),
            ("origin", "http://127.0.0.1:9464"),
        ]);
        assert_eq!(origin_refused(&same), None);
        assert_eq!(origin_refused(&req(&[("host", "127.0.0.1:9464")])), None);
        let page = req(&[
            ("host", "127.0.0.1:9464"),
            ("origin", "https://evil.example"),
        ]);
        assert!(origin_refused(&page).unwrap().contains("evil.example"));
        let null = req(&[("host", "127.0.0.1:9464"), ("origin", "null")]);
        assert!(origin_refused(&null).is_some());
    }

    #[test]
    fn the_token_file_is_the_users_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin/127.0.0.1_9.token");
        write_token(&path, "t1").unwrap();
        write_token(&path, "t2").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "t2\n");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(new_token().unwrap().len(), 64);
        assert_ne!(new_token().unwrap(), new_token().unwrap());
    }
}
