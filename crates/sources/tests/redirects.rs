//! Provider credentials never follow a redirect to another host: the shared HTTP client
//! follows redirects within the provider's origin only.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers every request with `respond(path)`; counts the requests and
/// keeps the last one's head.
async fn server(respond: fn(&str, u16) -> String) -> (u16, Arc<AtomicUsize>, Arc<std::sync::Mutex<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(std::sync::Mutex::new(String::new()));
    let (h, l) = (hits.clone(), last.clone());
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            h.fetch_add(1, Ordering::SeqCst);
            *l.lock().unwrap() = head;
            let _ = tcp.write_all(respond(&path, port).as_bytes()).await;
        }
    });
    (port, hits, last)
}

fn ok() -> String {
    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".into()
}

fn redirect(to: &str) -> String {
    format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_and_one_within_the_provider_is() {
    let (other, other_hits, _) = server(|_, _| ok()).await;
    static OTHER: AtomicUsize = AtomicUsize::new(0);
    OTHER.store(other as usize, Ordering::SeqCst);
    let (provider, _, last) = server(|path, port| match path {
        "/away" => redirect(&format!("http://127.0.0.1:{}/steal", OTHER.load(Ordering::SeqCst))),
        "/moved" => redirect(&format!("http://127.0.0.1:{port}/final")),
        _ => ok(),
    })
    .await;
    let http = cashtag_sources::http::client(std::time::Duration::from_secs(5));
    let get =
        |path: &str| http.get(format!("http://127.0.0.1:{provider}{path}")).header("APCA-API-KEY-ID", "the-key").send();

    let away = get("/away").await.unwrap();
    assert_eq!(away.status().as_u16(), 302, "the redirect is the answer");
    assert_eq!(other_hits.load(Ordering::SeqCst), 0, "the other host never saw the request (nor the key)");

    let moved = get("/moved").await.unwrap();
    assert_eq!(moved.status().as_u16(), 200, "a redirect within the provider is followed");
    assert!(last.lock().unwrap().starts_with("GET /final"), "{}", last.lock().unwrap());
}
