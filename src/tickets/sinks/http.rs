//! The blocking HTTP client the HTTP sinks share (ureq, rustls), and the one place
//! that turns transport errors and status codes into [`SinkError`]s.
//!
//! The classification is what the outbox's guarantees rest on: a connection that was
//! never made means "not delivered, the sink is down"; a request that was sent and
//! then lost its answer (timeout, reset, 5xx) means "maybe delivered", and the next
//! attempt is made in doubt (the sink looks before it creates).

use std::io;
use std::time::Duration;

use super::SinkError;

pub(crate) struct Http {
    agent: ureq::Agent,
}

/// A response with a 2xx status.
pub(crate) struct Reply {
    pub body: String,
}

impl Reply {
    /// The body as JSON. An answer that is not is an error in doubt: the 2xx said the
    /// work was done, only what it made (an issue's number) is unknown, so the next
    /// attempt looks before it creates.
    pub fn json(&self) -> Result<serde_json::Value, SinkError> {
        serde_json::from_str(&self.body)
            .map_err(|e| SinkError::rejected(format!("response is not JSON: {e}")).half_done())
    }
}

impl Http {
    pub fn new(timeout: Duration) -> Self {
        let connect = timeout.min(Duration::from_secs(5));
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(connect))
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // A redirected POST could create twice or somewhere else: refuse them.
            .max_redirects(0)
            .user_agent(concat!("anomalyd/", env!("CARGO_PKG_VERSION")))
            .build();
        Http {
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// Send a request; `Ok` only for a 2xx answer. `what` names the request in errors
    /// ("create issue"); URLs in errors never carry credentials (config refuses them).
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        what: &str,
    ) -> Result<Reply, SinkError> {
        let result = match method {
            "GET" => {
                let mut b = self.agent.get(url);
                for (k, v) in headers {
                    b = b.header(*k, *v);
                }
                b.call()
            }
            "POST" | "PATCH" | "PUT" => {
                let mut b = match method {
                    "POST" => self.agent.post(url),
                    "PATCH" => self.agent.patch(url),
                    _ => self.agent.put(url),
                };
                for (k, v) in headers {
                    b = b.header(*k, *v);
                }
                b.send(body.unwrap_or_default())
            }
            other => {
                return Err(SinkError::rejected(format!(
                    "{what}: unsupported method {other}"
                )))
            }
        };
        let mut resp = result.map_err(|e| transport_error(what, url, e))?;
        let status = resp.status().as_u16();
        let body = match resp
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_string()
        {
            Ok(body) => body,
            // Done, said the status; what was made went with the rest of the answer.
            Err(e) if (200..300).contains(&status) => {
                return Err(SinkError::in_doubt(format!(
                    "{what}: HTTP {status}, but its answer could not be read: {e}"
                )))
            }
            Err(_) => String::new(),
        };
        classify(what, status, body)
    }

    /// [`send`](Http::send) with a JSON body (and its `Content-Type`) when there is one.
    pub fn send_json(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        what: &str,
    ) -> Result<Reply, SinkError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let mut h = headers.to_vec();
        if bytes.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        self.send(method, url, &h, bytes.as_deref(), what)
    }
}

fn classify(what: &str, status: u16, body: String) -> Result<Reply, SinkError> {
    if (200..300).contains(&status) {
        return Ok(Reply { body });
    }
    let snippet: String = body.chars().take(200).collect();
    let msg = format!("{what}: HTTP {status}: {}", snippet.trim());
    Err(match status {
        // Throttled or timed out before processing: not done, and the sink wants a pause.
        408 | 429 => SinkError::unreachable(msg),
        // A server error may come after the work was done (a proxy timing out on a
        // slow backend): in doubt.
        500..=599 => SinkError::in_doubt(msg),
        _ => SinkError::rejected(msg),
    })
}

fn transport_error(what: &str, url: &str, e: ureq::Error) -> SinkError {
    use ureq::Error as E;
    let msg = format!("{what}: {url}: {e}");
    match &e {
        E::HostNotFound | E::ConnectionFailed | E::BadUri(_) | E::Tls(_) | E::Rustls(_) => {
            SinkError::unreachable(msg)
        }
        E::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => SinkError::unreachable(msg),
        E::Timeout(_) => SinkError::in_doubt(msg),
        E::Io(io) => match io.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::NotFound
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable => SinkError::unreachable(msg),
            _ => SinkError::in_doubt(msg),
        },
        _ => SinkError::in_doubt(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert!(classify("x", 201, String::new()).is_ok());
        let e = classify("x", 503, "busy".into())
            .err()
            .expect("503 is an error");
        assert!(e.sink_down && e.maybe_delivered);
        let e = classify("x", 429, String::new()).err().expect("429");
        assert!(e.sink_down && !e.maybe_delivered);
        let e = classify("x", 422, "bad".into()).err().expect("422");
        assert!(!e.sink_down && !e.maybe_delivered);
        assert!(e.message.contains("HTTP 422: bad"));
    }

    /// A 2xx whose answer is cut off or is not JSON: the work was done, what it made
    /// is unknown, so the delivery is maybe-delivered (the retry looks first), not
    /// rejected (the retry would create a second issue).
    #[test]
    fn a_done_answer_that_cannot_be_read_is_in_doubt() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/x", l.local_addr().expect("addr"));
        let server = std::thread::spawn(move || {
            for reply in [
                // Promises 100 bytes, sends 10, closes.
                "HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{\"number\"",
                "HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\n<html>ok!",
            ] {
                let (mut c, _) = l.accept().expect("accept");
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                c.write_all(reply.as_bytes()).expect("write");
            }
        });
        let h = Http::new(Duration::from_secs(5));
        let e = h
            .send("POST", &url, &[], Some(b"{}"), "create issue")
            .err()
            .expect("cut off");
        assert!(e.maybe_delivered, "{e:?}");
        assert!(e.message.contains("could not be read"), "{e:?}");
        let reply = h
            .send("POST", &url, &[], Some(b"{}"), "create issue")
            .expect("a 2xx");
        let e = reply.json().expect_err("not JSON");
        assert!(e.maybe_delivered, "{e:?}");
        server.join().expect("server");
    }

    #[test]
    fn refused_connection_is_not_delivered() {
        // A port that was just free: nobody listens.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let h = Http::new(Duration::from_secs(2));
        let e = h
            .send(
                "POST",
                &format!("http://127.0.0.1:{port}/x"),
                &[],
                Some(b"{}"),
                "post",
            )
            .err()
            .expect("refused");
        assert!(e.sink_down && !e.maybe_delivered, "{e:?}");
    }
}
