//! Test-only transform that misbehaves on command, to prove the sandbox holds:
//! a record whose value is `trap` panics (a trap), `loop` spins forever (caught by the
//! CPU deadline), `sleep` waits an hour inside the host (refused by the sandbox),
//! `alloc` allocates without bound (caught by the memory cap). Any other
//! record is passed through unchanged. `huge` returns 8 records of 1 MiB each, to
//! test the cap on what a plugin may hand back; `alias` returns 256 records whose
//! values are all the same 1 MiB of its memory (deliberately unsound, as a hostile
//! plugin in any language could do it), so the host would copy 256 MiB from 1.
//! `chatty` logs 10,000 lines (the host's per-plugin rate limit must hold them back). `readfile`, `env` and `net:PORT` report what
//! the sandbox lets a plugin see of the host's files, environment and network (it
//! should be nothing).

#[cfg(target_arch = "wasm32")]
mod component {
    use sluice_plugin_sdk::{Record, RecordTransform};

    struct Misbehave;

    impl RecordTransform for Misbehave {
        fn transform(record: Record) -> Result<Vec<Record>, String> {
            match record.value.as_slice() {
                b"trap" => panic!("misbehave: asked to trap"),
                b"loop" => {
                    let mut n: u64 = 0;
                    loop {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                }
                b"alloc" => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                    }
                }
                b"error" => Err("misbehave: asked to fail this record".into()),
                b"chatty" => {
                    for i in 0..10_000 {
                        sluice_plugin_sdk::log::info(&format!("misbehave: chatty line {i}"));
                    }
                    Ok(vec![record])
                }
                b"alias" => {
                    let mut one = std::mem::ManuallyDrop::new(vec![b'x'; 1 << 20]);
                    let (ptr, len, cap) = (one.as_mut_ptr(), one.len(), one.capacity());
                    Ok((0..256)
                        .map(|_| Record {
                            // SAFETY: none; the point is 256 lists over the same bytes.
                            value: unsafe { Vec::from_raw_parts(ptr, len, cap) },
                            ..record.clone()
                        })
                        .collect())
                }
                b"huge" => Ok((0..8)
                    .map(|_| Record {
                        value: vec![b'x'; 1 << 20],
                        ..record.clone()
                    })
                    .collect()),
                b"sleep" => {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                    Ok(vec![record])
                }
                b"readfile" => match std::fs::read("/etc/hostname") {
                    Ok(bytes) => Err(format!("sandbox leak: read {} bytes", bytes.len())),
                    Err(e) => Ok(vec![Record {
                        value: format!("denied: {e}").into_bytes(),
                        ..record
                    }]),
                },
                b"env" => {
                    let seen = std::env::vars().count() + std::env::args().count();
                    Ok(vec![Record {
                        value: format!("env+args: {seen}").into_bytes(),
                        ..record
                    }])
                }
                value if value.starts_with(b"net:") => {
                    let port: u16 = std::str::from_utf8(&value[4..])
                        .ok()
                        .and_then(|p| p.parse().ok())
                        .ok_or("misbehave: net:PORT wants a port")?;
                    match std::net::TcpStream::connect(("127.0.0.1", port)) {
                        Ok(_) => Err(format!("sandbox leak: connected to port {port}")),
                        Err(e) => Ok(vec![Record {
                            value: format!("denied: {e}").into_bytes(),
                            ..record
                        }]),
                    }
                }
                _ => Ok(vec![record]),
            }
        }
    }

    sluice_plugin_sdk::transform_plugin!(Misbehave);
}
