//! The web configuration file, in the format of Prometheus' exporter-toolkit
//! (`--web.config.file`), so operators reuse the files they already have for
//! node_exporter: `tls_server_config` and `basic_auth_users` (bcrypt hashes).
//!
//! Supported: `tls_server_config.{cert_file,key_file,client_ca_file,client_auth_type,
//! min_version,max_version}`, `basic_auth_users`, `http_server_config.headers`.
//! Anything else the toolkit knows (cipher suites, curve preferences, HTTP/2) is
//! refused by name rather than silently ignored, so nobody believes a setting is in force.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_yaml::Value;

use crate::config::file;
use crate::config::reader::{parse_yaml, show, Reader, MAX_YAML_BYTES};

/// Every problem in one web config file, each with its YAML path; a bad-input error
/// (`check-config` and `run` exit 2 on it).
#[derive(Debug, thiserror::Error)]
#[error("web config {path}:\n  {}", .errors.join("\n  "))]
pub struct WebConfigError {
    pub path: String,
    pub errors: Vec<String>,
}

/// The TLS section as written; file names relative to the web config's directory.
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth_type: String,
    min_version: String,
    max_version: String,
}

/// A validated web config, ready to serve with.
#[derive(Clone)]
pub struct WebConfig {
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    pub auth: Option<BasicAuth>,
    pub headers: Vec<(String, String)>,
}

impl WebConfig {
    /// No TLS, no auth, no extra headers: what `run` uses without `web_config_file`.
    pub fn plain() -> WebConfig {
        WebConfig {
            tls: None,
            auth: None,
            headers: Vec::new(),
        }
    }
}

impl std::fmt::Debug for WebConfig {
    // Never print the password hashes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("auth_users", &self.auth.as_ref().map(|a| a.users.len()))
            .finish()
    }
}

/// Basic auth against bcrypt hashes. bcrypt is slow on purpose (tens of ms); a
/// scraper sends the same credentials every few seconds, so successful checks are
/// cached by a keyed digest of the credentials, as exporter-toolkit does. The slow
/// check ([`Credentials::verify`]) is the caller's to schedule: the HTTP server runs
/// it on a bounded pool, never on a thread that serves requests.
#[derive(Clone)]
pub struct BasicAuth {
    users: Arc<BTreeMap<String, String>>,
    cache: Arc<Mutex<Vec<u64>>>,
    key: u64,
}

/// What a request's `Authorization` header says, before any bcrypt.
pub enum Presented {
    /// No header, not Basic, or not decodable: refused without a bcrypt.
    Malformed,
    /// These exact credentials were verified before.
    Cached,
    /// Needs a bcrypt verification.
    Unverified(Credentials),
}

/// Credentials that need the slow check.
pub struct Credentials {
    auth: BasicAuth,
    user: String,
    password: String,
    digest: u64,
}

impl Credentials {
    /// bcrypt against the user's hash (a dummy one for an unknown user, so timing does
    /// not reveal which user names exist); remembered when it succeeds.
    pub fn verify(self) -> bool {
        const DUMMY: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
        let users = &self.auth.users;
        let hash = users.get(&self.user).map(String::as_str).unwrap_or(DUMMY);
        let ok =
            bcrypt::verify(&self.password, hash).unwrap_or(false) && users.contains_key(&self.user);
        if ok {
            if let Ok(mut cache) = self.auth.cache.lock() {
                if cache.len() >= 64 {
                    cache.remove(0);
                }
                cache.push(self.digest);
            }
        }
        ok
    }
}

impl BasicAuth {
    /// Sort an `Authorization` header value without doing anything slow.
    pub fn present(&self, header: Option<&str>) -> Presented {
        use base64::Engine;
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return Presented::Malformed;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return Presented::Malformed;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return Presented::Malformed;
        };
        let Some((user, password)) = text.split_once(':') else {
            return Presented::Malformed;
        };
        let digest = self.digest(&text);
        if self.cache.lock().is_ok_and(|c| c.contains(&digest)) {
            return Presented::Cached;
        }
        Presented::Unverified(Credentials {
            auth: self.clone(),
            user: user.to_string(),
            password: password.to_string(),
            digest,
        })
    }

    /// The whole check, slow path included, on the calling thread (tests, tools).
    pub fn check(&self, header: Option<&str>) -> bool {
        match self.present(header) {
            Presented::Malformed => false,
            Presented::Cached => true,
            Presented::Unverified(c) => c.verify(),
        }
    }

    fn digest(&self, text: &str) -> u64 {
        // Prefixing a per-process random key means a cache entry cannot be forged
        // offline; the cache holds no password.
        use std::hash::Hasher;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write_u64(self.key);
        h.write(text.as_bytes());
        h.finish()
    }
}

/// Read and validate a web config file. Relative paths inside it are relative to the
/// file's directory, as in exporter-toolkit. Every problem is reported, each with its
/// YAML path.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let fail = |errors: Vec<String>| WebConfigError {
        path: path.display().to_string(),
        errors,
    };
    let text =
        file::read_text(path, MAX_YAML_BYTES as u64).map_err(|e| fail(vec![e.to_string()]))?;
    parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(fail)
}

/// Validate web config text; `base` is the directory relative file names start from.
pub fn parse(text: &str, base: &Path) -> Result<WebConfig, Vec<String>> {
    let doc = parse_yaml(text).map_err(|e| vec![e])?;
    let mut r = Reader::default();
    let top = r.section(
        Some(&doc),
        "",
        &[
            "tls_server_config",
            "basic_auth_users",
            "http_server_config",
        ],
    );
    let tls = top.get("tls_server_config").map(|v| {
        let t = r.section(
            Some(v),
            "tls_server_config",
            &[
                "cert_file",
                "key_file",
                "client_ca_file",
                "client_auth_type",
                "min_version",
                "max_version",
            ],
        );
        RawTls {
            cert_file: t.opt_path(&mut r, "cert_file"),
            key_file: t.opt_path(&mut r, "key_file"),
            client_ca_file: t.opt_path(&mut r, "client_ca_file"),
            client_auth_type: t.one_of(
                &mut r,
                "client_auth_type",
                &[
                    "NoClientCert",
                    "RequireAndVerifyClientCert",
                    "VerifyClientCertIfGiven",
                ],
                "NoClientCert",
            ),
            min_version: t.one_of(&mut r, "min_version", &["TLS12", "TLS13"], "TLS12"),
            max_version: t.one_of(&mut r, "max_version", &["TLS12", "TLS13"], "TLS13"),
        }
    });
    let users = string_map(&mut r, top.get("basic_auth_users"), "basic_auth_users");
    for (user, hash) in &users {
        let at = format!("basic_auth_users.{user}");
        if user.contains(':') {
            r.error(&at, "a user name cannot contain ':'");
        } else if !(hash.starts_with("$2a$")
            || hash.starts_with("$2b$")
            || hash.starts_with("$2y$"))
        {
            r.error(&at, "not a bcrypt hash (expected $2y$...)");
        }
    }
    let http = r.section(
        top.get("http_server_config"),
        "http_server_config",
        &["headers"],
    );
    let headers: Vec<(String, String)> =
        string_map(&mut r, http.get("headers"), "http_server_config.headers")
            .into_iter()
            .collect();
    for (k, v) in &headers {
        if hyper::header::HeaderName::try_from(k.as_str()).is_err()
            || hyper::header::HeaderValue::try_from(v.as_str()).is_err()
        {
            r.error(
                &format!("http_server_config.headers.{k}"),
                "not a valid HTTP header",
            );
        }
    }
    if !r.errors.is_empty() {
        return Err(r.errors);
    }
    let tls = match tls {
        None => None,
        Some(t) => Some(Arc::new(tls_config(base, t).map_err(|e| vec![e])?)),
    };
    let auth = (!users.is_empty()).then(|| BasicAuth {
        users: Arc::new(users),
        cache: Arc::new(Mutex::new(Vec::new())),
        key: rand::random(),
    });
    Ok(WebConfig { tls, auth, headers })
}

/// A mapping of strings to strings (user names to hashes, header names to values).
fn string_map(r: &mut Reader, v: Option<&Value>, path: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                match (k.as_str(), v.as_str()) {
                    (Some(k), Some(v)) => {
                        out.insert(k.to_string(), v.to_string());
                    }
                    (Some(k), None) => r.error(
                        &format!("{path}.{k}"),
                        format!("expected a string, got {}", show(v)),
                    ),
                    (None, _) => r.error(path, format!("keys must be strings, got {}", show(k))),
                }
            }
        }
        Some(other) => r.error(path, format!("expected a mapping, got {}", show(other))),
    }
    out
}

fn tls_config(base: &Path, t: RawTls) -> Result<tokio_rustls::rustls::ServerConfig, String> {
    use tokio_rustls::rustls::{self, server::WebPkiClientVerifier, version, RootCertStore};
    let (Some(cert_file), Some(key_file)) = (t.cert_file, t.key_file) else {
        return Err("tls_server_config: cert_file and key_file are both required".into());
    };
    let read = |key: &str, p: &Path| {
        let full = base.join(p);
        file::read_bytes(&full, file::SMALL)
            .map_err(|e| format!("tls_server_config.{key}: {}: {e}", full.display()))
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut read("cert_file", &cert_file)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_server_config.cert_file: {e}"))?;
    if certs.is_empty() {
        return Err("tls_server_config.cert_file: no certificate found".into());
    }
    let key = rustls_pemfile::private_key(&mut read("key_file", &key_file)?.as_slice())
        .map_err(|e| format!("tls_server_config.key_file: {e}"))?
        .ok_or("tls_server_config.key_file: no private key found")?;
    let ver = |v: &str| if v == "TLS13" { 13 } else { 12 };
    let (min, max) = (ver(&t.min_version), ver(&t.max_version));
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &version::TLS12), (13, &version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    if versions.is_empty() {
        return Err("tls_server_config.min_version: above max_version".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let auth_type = t.client_auth_type.as_str();
    let builder = if auth_type == "NoClientCert" {
        builder.with_no_client_auth()
    } else {
        let ca_file = t.client_ca_file.ok_or_else(|| {
            format!("tls_server_config.client_ca_file: client_auth_type {auth_type} needs it")
        })?;
        let mut roots = RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut read("client_ca_file", &ca_file)?.as_slice()) {
            let c = c.map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            roots
                .add(c)
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
        }
        let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        if auth_type == "VerifyClientCertIfGiven" {
            v = v.allow_unauthenticated();
        }
        builder.with_client_cert_verifier(
            v.build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?,
        )
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate/key: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::Engine;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn basic_auth_bcrypt() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let p = write(
            dir.path(),
            "web.yml",
            &format!("basic_auth_users:\n  prom: '{hash}'\n"),
        );
        let cfg = load(&p).unwrap();
        let auth = cfg.auth.unwrap();
        let hdr = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(auth.check(Some(&hdr("prom:s3cret"))));
        assert!(auth.check(Some(&hdr("prom:s3cret"))), "cached path");
        assert!(!auth.check(Some(&hdr("prom:wrong"))));
        assert!(!auth.check(Some(&hdr("other:s3cret"))));
        assert!(!auth.check(None));
        assert!(
            !format!("{:?}", load(&p).unwrap()).contains(&hash),
            "hash leaked into Debug"
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "a.yml",
            "tls_server_config:\n  cipher_suites: [x]\n",
        );
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains("tls_server_config.cipher_suites: unknown key"),
            "{e}"
        );
        let p = write(
            dir.path(),
            "b.yml",
            "basic_auth_users:\n  prom: plaintext\n",
        );
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains("basic_auth_users.prom: not a bcrypt hash"),
            "{e}"
        );
        let p = write(
            dir.path(),
            "c.yml",
            "tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.key\n",
        );
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains("tls_server_config.cert_file: ") && e.contains("nope.pem"),
            "{e}"
        );
        // Every problem at once, each with its path.
        let p = write(
            dir.path(),
            "d.yml",
            "basic_auth_users: {a: x, b: 3}\nhttp_server_config: {headers: {X-A: [1]}}\nnope: 1\n",
        );
        let e = load(&p).unwrap_err().to_string();
        for frag in [
            "basic_auth_users.a: not a bcrypt hash",
            "basic_auth_users.b: expected a string",
            "http_server_config.headers.X-A: expected a string",
            "nope: unknown key",
        ] {
            assert!(e.contains(frag), "{frag}: {e}");
        }
        // /dev/zero and FIFOs are refused, not read until memory runs out.
        let p = write(
            dir.path(),
            "e.yml",
            "tls_server_config:\n  cert_file: /dev/zero\n  key_file: /dev/zero\n",
        );
        assert!(load(&p)
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        assert!(load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
    }
}
