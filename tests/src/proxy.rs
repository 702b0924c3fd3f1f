//! A TCP proxy between the agent and the server, for fault tests: it can hold back the
//! server's answers (so a process can be killed between "stored" and "acknowledged"), rewrite
//! bytes of the answers (a tampered policy), and it records what the agent sent.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Shared {
    upstream: Mutex<Option<SocketAddr>>,
    /// Milliseconds to wait before relaying each chunk of an answer.
    delay_ms: AtomicU64,
    /// Byte rewrites applied to answers: (from, to), equal lengths.
    rewrites: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    /// Everything the agent sent, concatenated.
    sent: Mutex<Vec<u8>>,
    stopped: AtomicBool,
}

pub struct Proxy {
    pub url: String,
    shared: Arc<Shared>,
}

impl Proxy {
    pub fn start(upstream: &str) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared::default());
        let proxy = Proxy {
            url,
            shared: shared.clone(),
        };
        proxy.set_upstream(upstream)?;
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || relay(client, &shared));
            }
        });
        Ok(proxy)
    }

    /// Points the proxy at a (restarted) server, e.g. `http://127.0.0.1:4321`.
    pub fn set_upstream(&self, url: &str) -> anyhow::Result<()> {
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()?;
        *self
            .shared
            .upstream
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))? = Some(addr);
        Ok(())
    }

    pub fn set_delay(&self, delay: Duration) {
        self.shared.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Replaces `from` with `to` (same length, so Content-Length stays right) in answers.
    pub fn rewrite_answers(&self, from: &str, to: &str) {
        assert_eq!(from.len(), to.len(), "rewrites must keep the length");
        if let Ok(mut r) = self.shared.rewrites.lock() {
            r.push((from.as_bytes().to_vec(), to.as_bytes().to_vec()));
        }
    }

    pub fn clear_rewrites(&self) {
        if let Ok(mut r) = self.shared.rewrites.lock() {
            r.clear();
        }
    }

    /// How many times the agent sent `needle` (e.g. a report id) through the proxy.
    pub fn times_sent(&self, needle: &str) -> usize {
        let sent = self
            .shared
            .sent
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let needle = needle.as_bytes();
        sent.windows(needle.len()).filter(|w| *w == needle).count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn relay(client: TcpStream, shared: &Arc<Shared>) {
    let upstream = shared.upstream.lock().ok().and_then(|u| *u);
    let Some(server) = upstream.and_then(|addr| TcpStream::connect(addr).ok()) else {
        // The server is down: the agent sees the connection close.
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(mut client_r), Ok(mut server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = client_r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut sent) = shared.sent.lock() {
                    sent.extend_from_slice(&buf[..n]);
                }
                if server_w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = server_w.shutdown(Shutdown::Write);
        })
    };
    let (mut server_r, mut client_w) = (server, client);
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = server_r.read(&mut buf) {
        if n == 0 {
            break;
        }
        let delay = shared.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let mut chunk = buf[..n].to_vec();
        if let Ok(rewrites) = shared.rewrites.lock() {
            for (from, to) in rewrites.iter() {
                let mut i = 0;
                while i + from.len() <= chunk.len() {
                    if &chunk[i..i + from.len()] == from.as_slice() {
                        chunk[i..i + from.len()].copy_from_slice(to);
                        i += from.len();
                    } else {
                        i += 1;
                    }
                }
            }
        }
        if client_w.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = client_w.shutdown(Shutdown::Both);
    let _ = up.join();
}
