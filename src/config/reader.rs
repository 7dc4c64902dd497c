//! A YAML walker that records every problem instead of stopping at the first, and the
//! value types more than one section uses ([`Pattern`], [`Filter`], [`Paths`]).
//!
//! serde's `deny_unknown_fields` reports one error and gives up; operators fixing a
//! config want the whole list at once, each with its YAML path and the bad value.
//! Every accessor takes the default to fall back to, so parsing goes on after an
//! error and the caller sees all of them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex_lite::Regex;
use serde_yaml::{Mapping, Value};

/// Anchored regular expression (`^...$` added), as node_exporter's include/exclude flags.
/// regex-lite's syntax: Perl classes (`\d`, `\w`, `\s`) are ASCII, `\p{..}` is refused.
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl Pattern {
    /// Compiled once per process for each source (a `Regex` clone shares it): every
    /// parse of a config, each reload included, would otherwise compile the same
    /// built-in filters again, which is most of a parse's time.
    pub fn new(src: &str) -> Result<Self, regex_lite::Error> {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        static COMPILED: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();
        let cache = COMPILED.get_or_init(Default::default);
        if let Some(re) = cache.lock().ok().and_then(|c| c.get(src).cloned()) {
            return Ok(Pattern(re));
        }
        let re = Regex::new(&format!("^(?:{src})$"))?;
        if let Ok(mut c) = cache.lock() {
            // Bounded: configs hold a few dozen patterns; anything past this is churn.
            if c.len() >= 256 {
                c.clear();
            }
            c.insert(src.to_string(), re.clone());
        }
        Ok(Pattern(re))
    }
    /// [`new`](Self::new) with the error as people read it: `invalid regular
    /// expression "([": non-empty character class has no closing bracket`.
    pub fn parse(src: &str) -> Result<Self, String> {
        Pattern::new(src).map_err(|e| format!("invalid regular expression {src:?}: {e}"))
    }
    pub fn is_match(&self, s: &str) -> bool {
        self.0.is_match(s)
    }
    /// A built-in default. `None` only if `src` does not compile, which the collectors'
    /// tests rule out for every default they use.
    pub fn builtin(src: &str) -> Option<Pattern> {
        Pattern::new(src).ok()
    }
    /// The pattern as the user wrote it.
    pub fn as_str(&self) -> &str {
        let s = self.0.as_str();
        &s[4..s.len() - 2]
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// Stored (silences in the ticket store) as the pattern the user wrote.
impl serde::Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let src = String::deserialize(d)?;
        Pattern::parse(&src).map_err(serde::de::Error::custom)
    }
}

/// Name filter: kept when it matches `include` (if set) and does not match `exclude`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub include: Option<Pattern>,
    pub exclude: Option<Pattern>,
}

impl Filter {
    pub fn keeps(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|p| p.is_match(name))
            && !self.exclude.as_ref().is_some_and(|p| p.is_match(name))
    }
}

/// Where the host's pseudo filesystems live. `/proc` and `/sys` on a real host; a
/// fixture tree in tests (node_exporter's `--path.procfs` idea).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    /// Prefix added to mount points before `statvfs`, for fixtures (empty on a host).
    pub rootfs: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
        }
    }
}

impl Paths {
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }
    /// Mount point as seen from this process (fixture prefix applied).
    pub fn root(&self, mount: &str) -> PathBuf {
        self.rootfs.join(mount.trim_start_matches('/'))
    }
}

/// Limits on a YAML document, checked before and while it is parsed: parse time grows
/// with the square of the flow nesting depth in the YAML parser, so a small file of
/// brackets could freeze a reload for minutes.
pub const MAX_YAML_BYTES: usize = 1 << 20;
/// Deepest nesting of `[`/`{` (our deepest real config nests 6 levels).
pub const MAX_YAML_DEPTH: usize = 64;
/// Keys in all mappings together, and nodes of any kind.
pub const MAX_YAML_KEYS: usize = 10_000;
pub const MAX_YAML_NODES: usize = 100_000;

/// Parse a YAML document within the limits above; the error says which one was hit.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    if text.len() > MAX_YAML_BYTES {
        return Err(format!(
            "too large ({} bytes, at most {MAX_YAML_BYTES})",
            text.len()
        ));
    }
    let depth = flow_depth(text);
    if depth > MAX_YAML_DEPTH {
        return Err(format!(
            "nested too deeply (at most {MAX_YAML_DEPTH} levels)"
        ));
    }
    let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("malformed YAML: {e}"))?;
    let (mut keys, mut nodes) = (0usize, 0usize);
    let mut stack = vec![&doc];
    while let Some(v) = stack.pop() {
        nodes += 1;
        match v {
            Value::Sequence(items) => stack.extend(items),
            Value::Mapping(m) => {
                keys += m.len();
                stack.extend(m.values());
            }
            Value::Tagged(t) => stack.push(&t.value),
            _ => {}
        }
        if keys > MAX_YAML_KEYS || nodes > MAX_YAML_NODES {
            return Err(format!(
                "too many keys or values (at most {MAX_YAML_KEYS} keys and {MAX_YAML_NODES} values)"
            ));
        }
    }
    Ok(doc)
}

/// The deepest `[`/`{` nesting in `text`, never less than the YAML parser will see.
/// Quoted scalars (which start only where a token can) and comments are skipped; a
/// quote never spans lines here, so a quote misread inside a block scalar can hide
/// nothing past its own line. Brackets in plain scalars count, which can only
/// overestimate.
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for line in text.lines() {
        let mut token_start = true;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '#' if token_start => break,
                '"' if token_start => {
                    while let Some(q) = chars.next() {
                        match q {
                            '\\' => {
                                chars.next();
                            }
                            '"' => break,
                            _ => {}
                        }
                    }
                }
                '\'' if token_start => {
                    while let Some(q) = chars.next() {
                        if q == '\'' {
                            if chars.peek() == Some(&'\'') {
                                chars.next();
                            } else {
                                break;
                            }
                        }
                    }
                }
                '[' | '{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            token_start = matches!(c, ' ' | '\t' | '[' | '{' | ',' | ']' | '}');
        }
    }
    deepest
}

#[derive(Default)]
pub struct Reader {
    pub errors: Vec<String>,
}

/// Short rendering of a YAML value for error messages.
pub fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("tagged value {}", t.tag),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A mapping being read: checks for unknown keys once, then hands out fields.
pub struct Section<'a> {
    map: Option<&'a Mapping>,
    path: String,
}

impl Reader {
    pub fn error(&mut self, path: &str, message: impl std::fmt::Display) {
        let at = if path.is_empty() { "(top level)" } else { path };
        self.errors.push(format!("{at}: {message}"));
    }

    /// Open `v` as a mapping whose keys must be among `allowed`. A missing section
    /// (`None` or null) is fine: every field then takes its default.
    pub fn section<'a>(
        &mut self,
        v: Option<&'a Value>,
        path: &str,
        allowed: &[&str],
    ) -> Section<'a> {
        let map = match v {
            None | Some(Value::Null) => None,
            Some(Value::Mapping(m)) => Some(m),
            Some(other) => {
                self.error(path, format!("expected a mapping, got {}", show(other)));
                None
            }
        };
        if let Some(m) = map {
            for key in m.keys() {
                match key.as_str() {
                    Some(k) if allowed.contains(&k) => {}
                    Some(k) => self.error(
                        &join(path, k),
                        format!("unknown key (expected one of: {})", allowed.join(", ")),
                    ),
                    None => self.error(path, format!("keys must be strings, got {}", show(key))),
                }
            }
        }
        Section {
            map,
            path: path.to_string(),
        }
    }
}

impl<'a> Section<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    pub fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn bool(&self, r: &mut Reader, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                r.error(
                    &self.path(key),
                    format!("expected true or false, got {}", show(v)),
                );
                default
            }
        }
    }

    pub fn string(&self, r: &mut Reader, key: &str, default: &str) -> String {
        match self.get(key) {
            None => default.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => {
                r.error(
                    &self.path(key),
                    format!("expected a string, got {}", show(v)),
                );
                default.to_string()
            }
        }
    }

    pub fn one_of(&self, r: &mut Reader, key: &str, allowed: &[&str], default: &str) -> String {
        let s = self.string(r, key, default);
        if allowed.contains(&s.as_str()) {
            s
        } else {
            r.error(
                &self.path(key),
                format!("{s:?} is not one of: {}", allowed.join(", ")),
            );
            default.to_string()
        }
    }

    pub fn opt_path(&self, r: &mut Reader, key: &str) -> Option<PathBuf> {
        match self.get(key) {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(PathBuf::from(s)),
            Some(v) => {
                r.error(
                    &self.path(key),
                    format!("expected a non-empty path, got {}", show(v)),
                );
                None
            }
        }
    }

    pub fn int(&self, r: &mut Reader, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let v = match self.get(key) {
            None => return default,
            Some(v) => v,
        };
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => n,
            Some(n) => {
                r.error(
                    &self.path(key),
                    format!("{n} is out of range (must be between {min} and {max})"),
                );
                default
            }
            None => {
                r.error(
                    &self.path(key),
                    format!(
                        "expected a whole number between {min} and {max}, got {}",
                        show(v)
                    ),
                );
                default
            }
        }
    }

    pub fn duration(
        &self,
        r: &mut Reader,
        key: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let v = match self.get(key) {
            None => return default,
            Some(v) => v,
        };
        let parsed = match v {
            Value::String(s) => parse_duration(s),
            _ => {
                Err("durations are strings with a unit, like \"1s\", \"500ms\", \"5m\"".to_string())
            }
        };
        match parsed {
            Ok(d) if d >= min && d <= max => d,
            Ok(_) => {
                r.error(
                    &self.path(key),
                    format!(
                        "{} is out of range (must be between {} and {})",
                        show(v),
                        crate::text::fmt_duration(min),
                        crate::text::fmt_duration(max)
                    ),
                );
                default
            }
            Err(e) => {
                r.error(
                    &self.path(key),
                    format!("invalid duration {}: {e}", show(v)),
                );
                default
            }
        }
    }

    /// A size in bytes within `min..=max`.
    pub fn size(&self, r: &mut Reader, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let v = match self.get(key) {
            None => return default,
            Some(v) => v,
        };
        let parsed = match v {
            Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| "must be a whole number of bytes".to_string()),
            Value::String(s) => parse_size(s),
            _ => Err("expected a size like \"512MiB\" or a number of bytes".to_string()),
        };
        match parsed {
            Ok(n) if (min..=max).contains(&n) => n,
            Ok(n) => {
                r.error(
                    &self.path(key),
                    format!("{n} bytes is out of range (must be between {min} and {max})"),
                );
                default
            }
            Err(e) => {
                r.error(&self.path(key), format!("invalid size {}: {e}", show(v)));
                default
            }
        }
    }

    pub fn socket_addr(&self, r: &mut Reader, key: &str, default: SocketAddr) -> SocketAddr {
        let s = match self.get(key) {
            None => return default,
            Some(Value::String(s)) => s,
            Some(v) => {
                r.error(
                    &self.path(key),
                    format!("expected \"address:port\", got {}", show(v)),
                );
                return default;
            }
        };
        match parse_listen(s) {
            Ok(a) => a,
            Err(e) => {
                r.error(
                    &self.path(key),
                    format!("invalid listen address {s:?}: {e}"),
                );
                default
            }
        }
    }

    pub fn strings(&self, r: &mut Reader, key: &str) -> Vec<String> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    _ => {
                        r.error(
                            &format!("{}[{i}]", self.path(key)),
                            format!("expected a non-empty string, got {}", show(v)),
                        );
                        None
                    }
                })
                .collect(),
            Some(v) => {
                r.error(
                    &self.path(key),
                    format!("expected a list of strings, got {}", show(v)),
                );
                Vec::new()
            }
        }
    }

    /// A number (integer or decimal) within `min..=max`.
    pub fn float(&self, r: &mut Reader, key: &str, default: f64, min: f64, max: f64) -> f64 {
        let v = match self.get(key) {
            None => return default,
            Some(v) => v,
        };
        match v.as_f64() {
            Some(x) if x.is_finite() && x >= min && x <= max => x,
            Some(x) => {
                r.error(
                    &self.path(key),
                    format!("{x} is out of range (must be between {min} and {max})"),
                );
                default
            }
            None => {
                r.error(
                    &self.path(key),
                    format!("expected a number between {min} and {max}, got {}", show(v)),
                );
                default
            }
        }
    }

    /// The items of a list (each with its YAML path, e.g. `tickets.sinks[2]`); a
    /// missing key is an empty list, anything but a list is an error.
    pub fn list(&self, r: &mut Reader, key: &str) -> Vec<(String, &'a Value)> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{}[{i}]", self.path(key)), v))
                .collect(),
            Some(v) => {
                r.error(&self.path(key), format!("expected a list, got {}", show(v)));
                Vec::new()
            }
        }
    }

    /// An anchored regex; `""` means "no pattern" (e.g. to drop a default exclude).
    pub fn pattern(&self, r: &mut Reader, key: &str, default: Option<Pattern>) -> Option<Pattern> {
        match self.get(key) {
            None => default,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => match Pattern::parse(s) {
                Ok(p) => Some(p),
                Err(e) => {
                    r.error(&self.path(key), e);
                    default
                }
            },
            Some(v) => {
                r.error(
                    &self.path(key),
                    format!("expected a regular expression string, got {}", show(v)),
                );
                default
            }
        }
    }

    /// A `{include, exclude}` mapping of patterns, each falling back to `default`'s.
    pub fn filter(&self, r: &mut Reader, key: &str, default: &Filter) -> Filter {
        let s = r.section(self.get(key), &self.path(key), &["include", "exclude"]);
        Filter {
            include: s.pattern(r, "include", default.include.clone()),
            exclude: s.pattern(r, "exclude", default.exclude.clone()),
        }
    }
}

/// `host:port`, `[v6]:port`; `:port` means all interfaces (explicitly asked for).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    if let Ok(a) = full.parse() {
        return Ok(a);
    }
    if let Some(port) = full.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| "port must be 0-65535".to_string())?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err("expected IP:PORT, [IPv6]:PORT or localhost:PORT".to_string())
}

/// The longest duration any setting or flag accepts. Each key has its own, smaller,
/// range; this one keeps the arithmetic on durations (deadlines, end dates) far from
/// overflow whatever the caller does with them.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `1h30m`, `500ms`, `5m`, `30d`, `1.5s`. A bare number is refused: `interval: 1`
/// could mean seconds or minutes, and guessing wrong is worse than asking. Anything
/// over [`MAX_DURATION`] is refused rather than wrapped or saturated.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty".into());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("bad number {:?}", &rest[..num_len]))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 7.0 * 86400.0,
            "" => return Err("missing unit (use ms, s, m, h, d or w)".into()),
            u => return Err(format!("unknown unit {u:?} (use ms, s, m, h, d or w)")),
        };
        total += n * scale;
    }
    if !(total.is_finite() && total <= MAX_DURATION.as_secs_f64()) {
        return Err("too long (at most 100 years)".into());
    }
    Duration::try_from_secs_f64(total).map_err(|e| e.to_string())
}

/// A duration flag's value within `min..=max`, with the same message as the config
/// key it overrides (clap adds the flag's name).
pub fn parse_duration_in(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < min || d > max {
        return Err(format!(
            "out of range (must be between {} and {})",
            crate::text::fmt_duration(min),
            crate::text::fmt_duration(max)
        ));
    }
    Ok(d)
}

/// `512MiB`, `1GiB`, `100MB`, `4096`, `64KiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..num_len]
        .parse()
        .map_err(|_| format!("bad number in {s:?}"))?;
    let scale: f64 = match s[num_len..].trim() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024f64.powi(4),
        u => {
            return Err(format!(
                "unknown unit {u:?} (use B, KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    let bytes = n * scale;
    // `as u64` would saturate a huge value silently: refuse it instead.
    if !(bytes.is_finite() && bytes < u64::MAX as f64) {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        assert_eq!(crate::text::fmt_duration(Duration::from_secs(300)), "5m");
    }

    /// Issue #18: an oversized duration panicked ("cannot convert float seconds to
    /// Duration") in check-config, on reload and in `--interval`/`silence --duration`.
    #[test]
    fn oversized_durations_and_sizes_are_errors_not_panics() {
        for s in [
            "99999999999999999999999s",
            "9223372036854775s",
            "18446744073709551616ms",
            "101w1000000d",
        ] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.contains("too long"), "{s}: {e}");
        }
        assert_eq!(
            parse_duration("5200w").unwrap(),
            Duration::from_secs(5200 * 7 * 86400)
        );
        assert!(parse_size("99999999999999999999999TiB")
            .unwrap_err()
            .contains("too large"));
        let e = parse_duration_in("2h", Duration::from_millis(10), Duration::from_secs(3600));
        assert!(e.unwrap_err().contains("between 10ms and 1h"));
    }

    #[test]
    fn a_size_out_of_range_is_an_error_with_its_path() {
        let doc: Value = serde_yaml::from_str("max: 1GiB\nmin: 10\n").unwrap();
        let mut r = Reader::default();
        let s = r.section(Some(&doc), "x", &["max", "min"]);
        assert_eq!(s.size(&mut r, "max", 7, 0, 1 << 20), 7);
        assert_eq!(s.size(&mut r, "min", 7, 100, 1 << 20), 7);
        assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
        assert!(r.errors[0].starts_with("x.max: 1073741824 bytes is out of range"));
        assert!(r.errors[1].starts_with("x.min: 10 bytes is out of range"));
    }

    /// Issue #18: `interval: [[[[...]]]]` 100,000 deep froze a reload for 44 s.
    #[test]
    fn yaml_limits_refuse_deep_wide_and_large_documents_quickly() {
        let t = std::time::Instant::now();
        let deep = format!("interval: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_yaml(&deep).unwrap_err().contains("nested too deeply"));
        // Quotes and comments cannot hide the brackets that follow them.
        let hidden = format!("x: [{}]", "\" #\", [".repeat(200));
        assert!(parse_yaml(&hidden)
            .unwrap_err()
            .contains("nested too deeply"));
        let hidden = format!("x: [{}]", "\"]\", [".repeat(200));
        assert!(parse_yaml(&hidden)
            .unwrap_err()
            .contains("nested too deeply"));
        let hidden = format!("x: |\n  'a\ny: {}", "[".repeat(200));
        assert!(parse_yaml(&hidden)
            .unwrap_err()
            .contains("nested too deeply"));
        let keys: String = (0..20_000).map(|i| format!("k{i}: 1\n")).collect();
        assert!(parse_yaml(&keys).unwrap_err().contains("too many keys"));
        let big = "#".repeat(MAX_YAML_BYTES + 1);
        assert!(parse_yaml(&big).unwrap_err().contains("too large"));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        // What real configs hold still parses: quotes, brackets in them, comments.
        let ok = "a: {b: [1, \"[x\", 'it''s [']}  # [[[\nc: don't [\nd: \"x\\\" [\"\n";
        assert!(parse_yaml(ok).is_ok(), "{:?}", parse_yaml(ok));
        assert_eq!(flow_depth("a: [[1], {b: [2]}]"), 3);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("100MB").unwrap(), 100_000_000);
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn listen() {
        assert_eq!(parse_listen("127.0.0.1:0").unwrap().port(), 0);
        assert!(parse_listen(":9187").unwrap().ip().is_unspecified());
        assert!(parse_listen("[::1]:9187").unwrap().is_ipv6());
        assert!(parse_listen("nonsense").is_err());
    }
}
