//! A TCP fault proxy for tests: put it between a service and a real server (MongoDB,
//! Redis, the S3/Kinesis emulator) and change what the network does, live:
//!
//! - [`Fault::Pass`]: bytes flow both ways;
//! - [`Fault::Latency`]: every chunk waits this long in each direction;
//! - [`Fault::Blackhole`]: connections stay open (new ones are accepted) but nothing is
//!   forwarded — a server that accepts and never answers;
//! - [`Fault::Reset`]: every connection is reset (RST), new ones too;
//! - [`Fault::CloseAfter`]: each connection is closed after forwarding this many bytes
//!   in either direction.
//!
//! It runs on a thread of its own, so sync and async tests can use it alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the network does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Latency(Duration),
    Blackhole,
    Reset,
    CloseAfter(usize),
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    port: u16,
    fault: Arc<watch::Sender<Fault>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let (fault_tx, fault_rx) = watch::channel(Fault::Pass);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                tokio::select! {
                    _ = accept_loop(listener, upstream, fault_rx) => {}
                    _ = stop_rx => {}
                }
            });
        });
        let port = port_rx.recv().expect("proxy started");
        FaultProxy { port, fault: Arc::new(fault_tx), stop: Some(stop_tx), thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `url` with its `host:port` replaced by the proxy's.
    pub fn url_for(&self, url: &str, upstream: SocketAddr) -> String {
        url.replacen(&upstream.to_string(), &format!("127.0.0.1:{}", self.port), 1)
    }

    /// Changes what the network does, for open connections too.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, fault: watch::Receiver<Fault>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let fault = fault.clone();
        tokio::spawn(async move {
            if *fault.borrow() == Fault::Reset {
                reset(client);
                return;
            }
            let Ok(server) = TcpStream::connect(upstream).await else {
                reset(client);
                return;
            };
            connection(client, server, fault).await;
        });
    }
}

/// Closes a stream with RST instead of FIN (SO_LINGER with a zero timeout).
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket we own, with a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

async fn connection(client: TcpStream, server: TcpStream, fault: watch::Receiver<Fault>) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, fault.clone());
    let down = pump(sr, cw, fault.clone());
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Forwards one direction under the current fault; returns when the connection ends.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut forwarded = 0usize;
    loop {
        let now = *fault.borrow_and_update();
        if now == Fault::Reset {
            let _ = to.shutdown().await;
            return;
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = fault.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        // Under a blackhole what was read is held, and nothing more is read, until the
        // fault changes: to the peer it is a server (or a link) that stopped answering.
        let mut mode = *fault.borrow();
        while mode == Fault::Blackhole {
            if fault.changed().await.is_err() {
                return;
            }
            mode = *fault.borrow();
        }
        match mode {
            Fault::Reset => {
                let _ = to.shutdown().await;
                return;
            }
            Fault::Latency(d) => tokio::time::sleep(d).await,
            Fault::CloseAfter(limit) if forwarded + n > limit => {
                let k = limit.saturating_sub(forwarded);
                let _ = to.write_all(&buf[..k]).await;
                let _ = to.shutdown().await;
                return;
            }
            _ => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        forwarded += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn echo_server() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn roundtrip(port: u16, timeout: Duration) -> std::io::Result<Vec<u8>> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(b"ping")?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf)?;
        Ok(buf.to_vec())
    }

    #[test]
    fn pass_blackhole_and_reset() {
        let proxy = FaultProxy::start(echo_server());
        assert_eq!(roundtrip(proxy.port(), Duration::from_secs(2)).unwrap(), b"ping");
        proxy.set(Fault::Blackhole);
        let e = roundtrip(proxy.port(), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{e}");
        proxy.set(Fault::Reset);
        assert!(roundtrip(proxy.port(), Duration::from_secs(2)).is_err());
        proxy.set(Fault::Pass);
        assert_eq!(roundtrip(proxy.port(), Duration::from_secs(2)).unwrap(), b"ping");
    }
}
