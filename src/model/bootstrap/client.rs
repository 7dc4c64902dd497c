//! The part of Prometheus' HTTP API the bootstrap reads (`query_range`, `series`,
//! label values), over the blocking `ureq` client the ticket sinks use, with basic or
//! bearer auth and TLS (a private CA, a client certificate).
//!
//! Prometheus answers a `query_range` of more than 11,000 points per series with an
//! error, so [`Client::query_range`] pages: each request covers at most
//! [`MAX_POINTS`] steps of the same grid, and the pages are joined per series. Thanos
//! and Mimir keep the same limit.
//!
//! Every failure is a [`BootstrapError`] that names the server and says what to check;
//! credentials are read from files and never appear in a message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::BootstrapError;

/// Prometheus' limit on the points of one series in one `query_range` answer.
pub const MAX_POINTS: i64 = 11_000;

/// How to reach the server: its URL, credentials and TLS settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Endpoint {
    /// Base URL, e.g. `https://prometheus.example.com:9090` (a path prefix such as
    /// `/prometheus` is kept); the API is under `<url>/api/v1/`.
    pub url: String,
    pub auth: Auth,
    pub tls: Tls,
}

/// Credentials, each from a file (read when the client is built; never logged).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        username: String,
        password_file: PathBuf,
    },
    Bearer {
        token_file: PathBuf,
    },
}

/// TLS settings for an `https://` URL. Without `ca_file` the server's certificate is
/// checked against the Mozilla roots built in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM, chain first) and its key, for mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accept any certificate: for a test server only.
    pub insecure_skip_verify: bool,
}

/// One series of a `query_range` answer: its labels and its points (Unix ms, value);
/// non-finite values are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(i64, f64)>,
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    authorization: Option<String>,
    /// Requests stop being made after this (the caller's overall time budget).
    deadline: Option<Instant>,
    /// Pages fetched so far (for the summary, and the paging test).
    pub requests: usize,
}

impl Client {
    /// A client for `endpoint`; each request may take `timeout`, and none starts after
    /// `deadline`.
    pub fn new(
        endpoint: &Endpoint,
        timeout: Duration,
        deadline: Option<Instant>,
    ) -> Result<Client, BootstrapError> {
        let authorization = match &endpoint.auth {
            Auth::None => None,
            Auth::Basic {
                username,
                password_file,
            } => {
                use base64::Engine;
                let password = read_secret(password_file)?;
                let pair = format!("{username}:{password}");
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            Auth::Bearer { token_file } => Some(format!("Bearer {}", read_secret(token_file)?)),
        };
        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("anomalyd/", env!("CARGO_PKG_VERSION")));
        if endpoint.url.starts_with("https://") {
            config = config.tls_config(tls_config(&endpoint.tls)?);
        }
        Ok(Client {
            agent: ureq::Agent::new_with_config(config.build()),
            base: endpoint.url.trim_end_matches('/').to_string(),
            authorization,
            deadline,
            requests: 0,
        })
    }

    /// `query` evaluated every `step` from `start_ms` to `end_ms`, in pages of at most
    /// [`MAX_POINTS`] steps, joined per series.
    pub fn query_range(
        &mut self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step: Duration,
    ) -> Result<Vec<Series>, BootstrapError> {
        let step_ms = (step.as_millis() as i64).max(1);
        let mut joined: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> = BTreeMap::new();
        for (from, to) in pages(start_ms, end_ms, step_ms) {
            let data = self.call(
                "query_range",
                &[
                    ("query", query.to_string()),
                    ("start", seconds(from)),
                    ("end", seconds(to)),
                    ("step", seconds(step_ms)),
                ],
            )?;
            for s in parse_matrix(&data).map_err(|e| self.unexpected("query_range", &e))? {
                joined.entry(s.labels).or_default().extend(s.points);
            }
        }
        Ok(joined
            .into_iter()
            .map(|(labels, points)| Series { labels, points })
            .collect())
    }

    /// The label sets of the series matching `selector` with samples between the two
    /// times (`/api/v1/series`).
    pub fn series(
        &mut self,
        selector: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<BTreeMap<String, String>>, BootstrapError> {
        let data = self.call(
            "series",
            &[
                ("match[]", selector.to_string()),
                ("start", seconds(start_ms)),
                ("end", seconds(end_ms)),
            ],
        )?;
        let list = data
            .as_array()
            .ok_or_else(|| self.unexpected("series", "data is not a list"))?;
        Ok(list.iter().map(labels_of).collect())
    }

    /// Every value of `label` the server knows, at any time.
    pub fn label_values(&mut self, label: &str) -> Result<Vec<String>, BootstrapError> {
        let data = self.call(&format!("label/{label}/values"), &[])?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect())
    }

    /// One API call (`POST` with a form, so long queries never meet a URL length
    /// limit; `GET` without parameters); the `data` of a `success` answer.
    fn call(&mut self, api: &str, form: &[(&str, String)]) -> Result<Value, BootstrapError> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(BootstrapError::Timeout {
                url: self.base.clone(),
            });
        }
        self.requests += 1;
        let url = format!("{}/api/v1/{api}", self.base);
        let result = if form.is_empty() {
            let mut req = self.agent.get(&url);
            if let Some(a) = &self.authorization {
                req = req.header("Authorization", a);
            }
            req.call()
        } else {
            let mut req = self.agent.post(&url);
            if let Some(a) = &self.authorization {
                req = req.header("Authorization", a);
            }
            req.send_form(form.iter().map(|(k, v)| (*k, v.as_str())))
        };
        let mut resp = result.map_err(|e| self.transport(e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(512 << 20)
            .read_to_string()
            .map_err(|e| self.transport(e))?;
        if status == 401 || status == 403 {
            return Err(BootstrapError::Auth {
                url: self.base.clone(),
                status,
            });
        }
        let json: Value = match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(_) => {
                let snippet: String = body.chars().take(120).collect();
                return Err(self.unexpected(
                    api,
                    &format!("HTTP {status}, not JSON: {:?}", snippet.trim()),
                ));
            }
        };
        if json["status"] == "success" {
            return Ok(json["data"].clone());
        }
        Err(BootstrapError::Query {
            url: self.base.clone(),
            message: format!(
                "HTTP {status}: {}: {}",
                json["errorType"].as_str().unwrap_or("error"),
                json["error"].as_str().unwrap_or("no error message")
            ),
        })
    }

    fn transport(&self, e: ureq::Error) -> BootstrapError {
        use ureq::Error as E;
        match e {
            E::Timeout(_) => BootstrapError::Timeout {
                url: self.base.clone(),
            },
            E::Tls(_) | E::Rustls(_) => BootstrapError::Tls {
                url: self.base.clone(),
                message: e.to_string(),
            },
            other => BootstrapError::Unreachable {
                url: self.base.clone(),
                message: other.to_string(),
            },
        }
    }

    fn unexpected(&self, api: &str, message: &str) -> BootstrapError {
        BootstrapError::NotPrometheus {
            url: self.base.clone(),
            message: format!("/api/v1/{api}: {message}"),
        }
    }
}

/// The pages of a range: `(from, to)` pairs on the grid `start + k * step`, each of at
/// most [`MAX_POINTS`] points, the next starting one step after the last ended.
pub fn pages(start_ms: i64, end_ms: i64, step_ms: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut from = start_ms;
    while from <= end_ms {
        let to = (from + (MAX_POINTS - 1) * step_ms).min(end_ms);
        out.push((from, to));
        from = to + step_ms;
    }
    out
}

/// Unix ms as the decimal seconds the API takes.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

/// The series of a `resultType: matrix` answer.
fn parse_matrix(data: &Value) -> Result<Vec<Series>, String> {
    if data["resultType"] != "matrix" {
        return Err(format!("expected a matrix, got {}", data["resultType"]));
    }
    let result = data["result"].as_array().ok_or("no result list")?;
    Ok(result
        .iter()
        .map(|s| Series {
            labels: labels_of(&s["metric"]),
            points: s["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let t = p.get(0)?.as_f64()?;
                    let v: f64 = p.get(1)?.as_str()?.parse().ok()?;
                    v.is_finite().then_some(((t * 1000.0).round() as i64, v))
                })
                .collect(),
        })
        .collect())
}

fn read_secret(path: &Path) -> Result<String, BootstrapError> {
    // A regular file of bounded size: a FIFO or /dev/zero would never end.
    let text = crate::config::file::read_text(path, crate::config::file::SMALL).map_err(|e| {
        BootstrapError::Config {
            message: format!("cannot read {}: {e}", path.display()),
        }
    })?;
    let t = text.trim();
    if t.is_empty() {
        return Err(BootstrapError::Config {
            message: format!("{} is empty", path.display()),
        });
    }
    Ok(t.to_string())
}

fn read_pem(path: &Path) -> Result<Vec<u8>, BootstrapError> {
    crate::config::file::read_bytes(path, crate::config::file::SMALL).map_err(|e| {
        BootstrapError::Config {
            message: format!("cannot read {}: {e}", path.display()),
        }
    })
}

fn tls_config(t: &Tls) -> Result<ureq::tls::TlsConfig, BootstrapError> {
    use ureq::tls::{parse_pem, Certificate, ClientCert, PemItem, PrivateKey, RootCerts};
    let bad = |path: &Path, what: &str| BootstrapError::Config {
        message: format!("{}: {what}", path.display()),
    };
    let certs_in = |path: &Path| -> Result<Vec<Certificate<'static>>, BootstrapError> {
        let pem = read_pem(path)?;
        let certs: Vec<Certificate<'static>> = parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(bad(path, "no PEM certificate in it"));
        }
        Ok(certs)
    };
    let mut b = ureq::tls::TlsConfig::builder().disable_verification(t.insecure_skip_verify);
    if let Some(ca) = &t.ca_file {
        b = b.root_certs(RootCerts::new_with_certs(&certs_in(ca)?));
    }
    match (&t.cert_file, &t.key_file) {
        (Some(cert), Some(key)) => {
            let chain = certs_in(cert)?;
            let key_pem = read_pem(key)?;
            let key =
                PrivateKey::from_pem(&key_pem).map_err(|_| bad(key, "no PEM private key in it"))?;
            b = b.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        (None, None) => {}
        _ => {
            return Err(BootstrapError::Config {
                message: "a client certificate needs both cert_file and key_file".into(),
            })
        }
    }
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_the_range_on_one_grid_within_the_limit() {
        let step = 60_000;
        // 14 days at 1 min: 20,161 points, so 2 pages.
        let (start, end) = (0, 14 * 86_400_000);
        let p = pages(start, end, step);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0], (0, 10_999 * step));
        assert_eq!(p[1], (11_000 * step, end));
        for (from, to) in &p {
            assert!((to - from) / step < MAX_POINTS, "{from}..{to}");
            assert_eq!(from % step, 0, "on the grid");
        }
        // Exactly the limit: one page; one more point: two.
        assert_eq!(pages(0, 10_999 * step, step).len(), 1);
        assert_eq!(
            pages(0, 11_000 * step, step),
            [(0, 10_999 * step), (11_000 * step, 11_000 * step)]
        );
        assert_eq!(pages(5, 5, step), [(5, 5)]);
        assert!(pages(10, 5, step).is_empty());
    }

    #[test]
    fn seconds_are_exact_to_the_millisecond() {
        assert_eq!(seconds(1_700_000_000_123), "1700000000.123");
        assert_eq!(seconds(15), "0.015");
    }

    #[test]
    fn matrix_points_skip_non_finite_values() {
        let data: Value = serde_json::from_str(
            r#"{"resultType":"matrix","result":[{"metric":{"mode":"user"},
                "values":[[1700000000.5,"0.25"],[1700000001,"NaN"],[1700000002,"+Inf"],[1700000003,"1e3"]]}]}"#,
        )
        .expect("json");
        let s = parse_matrix(&data).expect("matrix");
        assert_eq!(s[0].labels["mode"], "user");
        assert_eq!(
            s[0].points,
            [(1_700_000_000_500, 0.25), (1_700_000_003_000, 1000.0)]
        );
        assert!(parse_matrix(&serde_json::json!({"resultType": "vector", "result": []})).is_err());
    }
}
