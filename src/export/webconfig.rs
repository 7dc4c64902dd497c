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

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("web config {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    http_server_config: Option<RawHttp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// A validated web config, ready to serve with.
#[derive(Clone)]
pub struct WebConfig {
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    pub auth: Option<BasicAuth>,
    pub headers: Vec<(String, String)>,
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
/// cached by a keyed digest of the credentials, as exporter-toolkit does.
#[derive(Clone)]
pub struct BasicAuth {
    users: Arc<BTreeMap<String, String>>,
    cache: Arc<Mutex<Vec<u64>>>,
    key: u64,
}

impl BasicAuth {
    /// Check an `Authorization` header value.
    pub fn check(&self, header: Option<&str>) -> bool {
        use base64::Engine;
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = text.split_once(':') else {
            return false;
        };
        let digest = self.digest(&text);
        if let Ok(cache) = self.cache.lock() {
            if cache.contains(&digest) {
                return true;
            }
        }
        // Unknown users still pay a bcrypt verification so timing does not reveal
        // which user names exist.
        const DUMMY: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
        let hash = self.users.get(user).map(String::as_str).unwrap_or(DUMMY);
        let ok = bcrypt::verify(password, hash).unwrap_or(false) && self.users.contains_key(user);
        if ok {
            if let Ok(mut cache) = self.cache.lock() {
                if cache.len() >= 64 {
                    cache.remove(0);
                }
                cache.push(digest);
            }
        }
        ok
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

fn invalid(path: &Path, message: impl Into<String>) -> WebConfigError {
    WebConfigError::Invalid {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Read and validate a web config file. Relative paths inside it are relative to the
/// file's directory, as in exporter-toolkit.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| invalid(path, e.to_string()))?;
    let raw: Raw = serde_yaml::from_str(&text).map_err(|e| invalid(path, e.to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let tls = match raw.tls_server_config {
        None => None,
        Some(t) => Some(Arc::new(tls_config(path, base, t)?)),
    };
    let auth = if raw.basic_auth_users.is_empty() {
        None
    } else {
        for (user, hash) in &raw.basic_auth_users {
            if user.contains(':') {
                return Err(invalid(
                    path,
                    format!("basic_auth_users: user name {user:?} contains ':'"),
                ));
            }
            if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
                return Err(invalid(
                    path,
                    format!("basic_auth_users.{user}: not a bcrypt hash (expected $2y$...)"),
                ));
            }
        }
        Some(BasicAuth {
            users: Arc::new(raw.basic_auth_users),
            cache: Arc::new(Mutex::new(Vec::new())),
            key: rand::random(),
        })
    };
    let headers = raw
        .http_server_config
        .map(|h| h.headers.into_iter().collect())
        .unwrap_or_default();
    Ok(WebConfig { tls, auth, headers })
}

fn tls_config(
    path: &Path,
    base: &Path,
    t: RawTls,
) -> Result<tokio_rustls::rustls::ServerConfig, WebConfigError> {
    use tokio_rustls::rustls::{self, server::WebPkiClientVerifier, version, RootCertStore};
    let (Some(cert_file), Some(key_file)) = (t.cert_file, t.key_file) else {
        return Err(invalid(
            path,
            "tls_server_config: cert_file and key_file are both required",
        ));
    };
    let read = |p: &Path| {
        let full = base.join(p);
        std::fs::read(&full).map_err(|e| invalid(path, format!("{}: {e}", full.display())))
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut read(&cert_file)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(path, format!("cert_file: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(path, "cert_file: no certificate found"));
    }
    let key = rustls_pemfile::private_key(&mut read(&key_file)?.as_slice())
        .map_err(|e| invalid(path, format!("key_file: {e}")))?
        .ok_or_else(|| invalid(path, "key_file: no private key found"))?;
    let ver = |v: &Option<String>, default| match v.as_deref() {
        None => Ok(default),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other) => Err(invalid(
            path,
            format!("unsupported TLS version {other:?} (TLS12 or TLS13)"),
        )),
    };
    let (min, max) = (ver(&t.min_version, 12)?, ver(&t.max_version, 13)?);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &version::TLS12), (13, &version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    if versions.is_empty() {
        return Err(invalid(path, "min_version is above max_version"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| invalid(path, e.to_string()))?;
    let auth_type = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match auth_type {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let ca_file = t.client_ca_file.ok_or_else(|| invalid(path, format!("client_auth_type {auth_type} needs client_ca_file")))?;
            let mut roots = RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut read(&ca_file)?.as_slice()) {
                let c = c.map_err(|e| invalid(path, format!("client_ca_file: {e}")))?;
                roots.add(c).map_err(|e| invalid(path, format!("client_ca_file: {e}")))?;
            }
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if auth_type == "VerifyClientCertIfGiven" {
                v = v.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(v.build().map_err(|e| invalid(path, e.to_string()))?)
        }
        other => {
            return Err(invalid(
                path,
                format!("client_auth_type {other:?} is not supported (NoClientCert, RequireAndVerifyClientCert, VerifyClientCertIfGiven)"),
            ))
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid(path, format!("certificate/key: {e}")))?;
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
        assert!(load(&p).unwrap_err().to_string().contains("cipher_suites"));
        let p = write(
            dir.path(),
            "b.yml",
            "basic_auth_users:\n  prom: plaintext\n",
        );
        assert!(load(&p)
            .unwrap_err()
            .to_string()
            .contains("not a bcrypt hash"));
        let p = write(
            dir.path(),
            "c.yml",
            "tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.key\n",
        );
        assert!(load(&p).unwrap_err().to_string().contains("nope.pem"));
    }
}
