//! WebSocket plumbing shared by the streaming providers.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects with a timeout. The URL may carry a token: errors never include it.
pub async fn connect(url: &str, timeout: Duration) -> Result<Socket, String> {
    match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(e)) => Err(format!("websocket connect failed: {}", strip_query(&e.to_string()))),
        Err(_) => Err(format!("websocket connect timed out after {} s", timeout.as_secs())),
    }
}

/// Removes anything after `?` in URLs inside a message (tokens travel in query strings).
pub fn strip_query(s: &str) -> String {
    s.split_whitespace()
        .map(|w| {
            if w.contains("://") && w.contains('?') {
                w.split('?').next().unwrap_or(w).to_string() + "?…"
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The next text frame (answering pings, skipping binary); None when the socket closed.
pub async fn next_text(socket: &mut Socket) -> Option<Result<String, String>> {
    loop {
        match socket.next().await? {
            Ok(Message::Text(t)) => return Some(Ok(t.to_string())),
            Ok(Message::Ping(p)) => {
                let _ = socket.send(Message::Pong(p)).await;
            }
            Ok(Message::Close(_)) => return None,
            Ok(_) => {}
            Err(e) => return Some(Err(e.to_string())),
        }
    }
}

pub async fn send_json(socket: &mut Socket, v: &serde_json::Value) -> Result<(), String> {
    socket.send(Message::Text(v.to_string().into())).await.map_err(|e| e.to_string())
}
