//! A minimal HTTP/1.1 server for `/metrics`: one request per connection (answered with
//! `Connection: close`), GET and HEAD only, bounded request heads, time and connections.

use std::{sync::Arc, time::Duration};

use prometheus::Registry;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::timeout,
};

use super::{CONTENT_TYPE, render};

/// A request head larger than this is refused (431).
const MAX_HEAD_BYTES: usize = 16 << 10;
/// A client gets this long to send its request head, and again to take the response.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;

const INDEX: &str = "<html><head><title>mmnotif-trace</title></head><body><h1>mmnotif-trace</h1>\
<p><a href=\"/metrics\">/metrics</a>: Prometheus metrics of the running trace.</p></body></html>\n";

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// HEAD: headers (with the body's length) but no body.
    pub head_only: bool,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response { status, content_type: "text/plain; charset=utf-8", body: format!("{body}\n"), head_only: false }
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            505 => "HTTP Version Not Supported",
            _ => "Internal Server Error",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.status == 405 {
            head.push_str("Allow: GET, HEAD\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// The response to a complete request head.
pub(super) fn route(head: &[u8], registry: &Registry) -> Response {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(head.get(..line_end).unwrap_or_default()) else {
        return Response::text(400, "request line is not UTF-8");
    };
    let parts: Vec<&str> = line.trim_end_matches('\r').split(' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Response::text(400, "malformed request line");
    };
    if !version.starts_with("HTTP/") {
        return Response::text(400, "malformed request line");
    }
    if !matches!(*version, "HTTP/1.0" | "HTTP/1.1") {
        return Response::text(505, "only HTTP/1.x is served");
    }
    let head_only = match *method {
        "GET" => false,
        "HEAD" => true,
        _ => return Response::text(405, "only GET and HEAD are served"),
    };
    let path = target.split('?').next().unwrap_or_default();
    let mut response = match path {
        "/metrics" => match render(registry) {
            Ok(body) => Response { status: 200, content_type: CONTENT_TYPE, body, head_only: false },
            Err(e) => Response::text(500, &e.to_string()),
        },
        "/" => {
            Response { status: 200, content_type: "text/html; charset=utf-8", body: INDEX.to_owned(), head_only: false }
        }
        _ => Response::text(404, "not found; metrics are at /metrics"),
    };
    response.head_only = head_only;
    response
}

/// Reads up to the blank line ending a request head. `Ok(None)`: closed before a request.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Result<Vec<u8>, Response>>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(if buf.is_empty() { None } else { Some(Err(Response::text(400, "incomplete request head"))) });
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(Ok(buf)));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Ok(Some(Err(Response::text(431, "request head too large"))));
        }
    }
}

async fn handle(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let response = match timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => Response::text(408, "no complete request head in time"),
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(Ok(head)))) => route(&head, registry),
        Ok(Ok(Some(Err(refusal)))) => refusal,
        Ok(Err(e)) => return Err(e),
    };
    timeout(IO_TIMEOUT, async {
        stream.write_all(&response.to_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// Accepts and answers until the task is aborted.
pub(super) async fn serve(listener: TcpListener, registry: Registry) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: pass, and try again shortly.
                log::warn!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &registry).await {
                log::debug!("metrics endpoint: {e}");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Shared, registry};

    fn reg() -> Registry {
        registry(Arc::new(Shared::default())).expect("registry")
    }

    #[test]
    fn serves_metrics_for_get_and_only_headers_for_head() {
        let r = reg();
        let get = route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        assert_eq!((get.status, get.content_type), (200, CONTENT_TYPE));
        assert!(get.body.contains("# TYPE mmnotif_violations_total counter"), "{}", get.body);
        let bytes = String::from_utf8(get.to_bytes()).unwrap();
        assert!(bytes.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(bytes.contains(&format!("Content-Length: {}\r\n", get.body.len())));
        assert!(bytes.ends_with(&get.body));
        let head = route(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n", &r);
        let head_bytes = String::from_utf8(head.to_bytes()).unwrap();
        assert!(head_bytes.ends_with("\r\n\r\n") && head_bytes.contains("Content-Length: "), "{head_bytes}");
    }

    #[test]
    fn refuses_what_it_does_not_serve() {
        let r = reg();
        assert_eq!(route(b"GET /nope HTTP/1.1\r\n\r\n", &r).status, 404);
        let post = route(b"POST /metrics HTTP/1.1\r\n\r\n", &r);
        assert_eq!(post.status, 405);
        assert!(String::from_utf8(post.to_bytes()).unwrap().contains("Allow: GET, HEAD\r\n"));
        assert_eq!(route(b"GET /metrics\r\n\r\n", &r).status, 400);
        assert_eq!(route(b"\xff\xfe\r\n\r\n", &r).status, 400);
        assert_eq!(route(b"GET /metrics HTTP/2.0\r\n\r\n", &r).status, 505);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n", &r).content_type, "text/html; charset=utf-8");
    }

    #[tokio::test]
    async fn answers_over_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, reg()));
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
        let mut response = String::new();
        client.read_to_string(&mut response).await.unwrap();
        server.abort();
        let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("Content-Length");
        assert_eq!(length, body.len());
        assert!(body.contains("mmnotif_tracer_info{"), "{body}");
    }
}
