//! The SMTP sink against a real SMTP server: Debian's `python3-aiosmtpd` (installed by
//! tests/run.sh), started here on loopback with its Maildir handler, so each accepted
//! mail lands as a file we read back.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::sinks::*;
use anomalyd::tickets::outbox::Deliverer;
use anomalyd::tickets::DeliveryKind;

struct Smtpd(Child);

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Headers (unfolded, lower-case names) and body of a stored mail.
fn parse_mail(text: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = text
        .replace("\r\n", "\n")
        .split_once("\n\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or_default();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (headers, body)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// aiosmtpd on a free loopback port, storing mails in `maildir`: (server, port).
fn smtpd(maildir: &std::path::Path) -> (Smtpd, u16) {
    let port = free_port();
    let child = Command::new("/usr/bin/aiosmtpd")
        .args(["-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd (apt-get install python3-aiosmtpd)");
    let server = Smtpd(child);
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "aiosmtpd did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    (server, port)
}

#[test]
fn mails_arrive_with_subject_body_and_threading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("mail");
    let (_smtpd, port) = smtpd(&maildir);
    let sinks = sinks_from_yaml(&format!(
        "sinks:\n- name: mail\n  type: smtp\n  host: 127.0.0.1\n  port: {port}\n  tls: none\n  from: 'anomalyd <anomalyd@web-1.example>'\n  to: [ops@example.com, oncall@example.com]\n  reopen_window: 1h\n"
    ))
    .expect("config");
    let db = dir.path().join("tickets.db");
    let min = 60_000;
    enqueue(
        &db,
        "mail",
        &[
            delivery("a1", "INC-1", "fpA", DeliveryKind::Open, 0),
            delivery("a2", "INC-1", "fpA", DeliveryKind::Resolve, min),
            delivery("a3", "INC-2", "fpA", DeliveryKind::Open, 5 * min),
        ],
    );
    let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
    let rep = d.run_once(10 * min);
    assert_eq!((rep.delivered, rep.failed), (3, 0), "{rep:?}");

    let mut mails: Vec<(Vec<(String, String)>, String)> = std::fs::read_dir(maildir.join("new"))
        .expect("maildir/new")
        .map(|e| {
            let p = e.expect("entry").path();
            parse_mail(&std::fs::read_to_string(p).expect("read mail"))
        })
        .collect();
    assert_eq!(mails.len(), 3);
    mails.sort_by_key(|(h, _)| header(h, "message-id").to_string());
    let subjects: Vec<&str> = mails.iter().map(|(h, _)| header(h, "subject")).collect();
    assert_eq!(
        subjects,
        vec![
            "[anomalyd] INC-1 opened: storage: /var full in 3 h 10 min",
            "[anomalyd] INC-1 resolved: storage: /var full in 3 h 10 min",
            "[anomalyd] INC-1 (INC-2) reopened: storage: /var full in 3 h 10 min",
        ]
    );
    let (h0, b0) = &mails[0];
    assert_eq!(header(h0, "message-id"), "<a1@anomalyd>");
    assert!(header(h0, "from").contains("anomalyd@web-1.example"));
    let to = header(h0, "to");
    assert!(to.contains("ops@example.com") && to.contains("oncall@example.com"));
    // aiosmtpd records the envelope recipients.
    let rcpt = header(h0, "x-rcptto");
    assert!(rcpt.contains("ops@example.com") && rcpt.contains("oncall@example.com"));
    assert!(b0.contains("/var fills at 2 GiB/h."), "{b0}");
    for (h, _) in &mails[1..] {
        assert_eq!(header(h, "in-reply-to"), "<a1@anomalyd>");
        assert_eq!(header(h, "references"), "<a1@anomalyd>");
    }
}

#[test]
fn a_missing_password_file_is_a_config_error_naming_the_file() {
    let errs = sinks_from_yaml(
        "sinks:\n- {name: m, type: smtp, host: mail.example, from: a@example.com, to: [b@example.com], user: bot, password_file: /nonexistent/pw}\n- {name: m2, type: smtp, host: mail.example, from: not-an-address, to: []}\n",
    )
    .expect_err("invalid");
    let all = errs.join("\n");
    assert!(
        all.contains("tickets.sinks[0].password_file: cannot read secret file /nonexistent/pw"),
        "{all}"
    );
    assert!(
        all.contains("tickets.sinks[1].from: \"not-an-address\" is not an email address"),
        "{all}"
    );
    assert!(all.contains("tickets.sinks[1].to: missing"), "{all}");
}

/// An aiosmtpd server that requires STARTTLS (with a certificate for 127.0.0.1 from
/// a private CA made by `openssl`) and AUTH LOGIN/PLAIN with one user, storing mails in
/// a Maildir and each login attempt in `logins` (one line: user, ok|bad).
const TLS_SERVER: &str = r#"
import mailbox, signal, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult

port, cert, key, maildir, logins = sys.argv[1:6]

def auth(server, session, envelope, mechanism, data):
    ok = data.login == b"bot" and data.password == b"s3cret-smtp-pw"
    with open(logins, "a") as f:
        f.write("%s %s\n" % (data.login.decode(), "ok" if ok else "bad"))
    return AuthResult(success=ok)

ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
               tls_context=ctx, require_starttls=True, authenticator=auth,
               auth_required=True, auth_require_tls=True)
c.start()
print("ready", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
c.stop()
"#;

#[test]
fn starttls_with_a_private_ca_and_login() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| dir.path().join(n);
    // A private CA and a server certificate for 127.0.0.1 signed by it.
    let openssl = |args: &[&str]| {
        let st = Command::new("openssl")
            .current_dir(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(st.success(), "openssl {args:?}");
    };
    std::fs::write(
        p("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    openssl(
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ]
        .iter()
        .chain(&[
            "-subj",
            "/CN=anomalyd test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ])
        .copied()
        .collect::<Vec<_>>(),
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ]
        .iter()
        .chain(&["-keyout", "key.pem", "-out", "leaf.csr"])
        .copied()
        .collect::<Vec<_>>(),
    );
    openssl(
        &[
            "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        ]
        .iter()
        .chain(&[
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ])
        .copied()
        .collect::<Vec<_>>(),
    );
    std::fs::write(p("server.py"), TLS_SERVER).expect("write server");
    std::fs::write(p("pw"), "s3cret-smtp-pw\n").expect("write pw");
    std::fs::write(p("bad-pw"), "wrong\n").expect("write pw");
    let port = free_port();
    let child = Command::new("/usr/bin/python3")
        .arg(p("server.py"))
        .arg(port.to_string())
        .args([p("cert.pem"), p("key.pem"), p("mail"), p("logins")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the aiosmtpd server");
    let _smtpd = Smtpd(child);
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let sink = |name: &str, extra: &str| {
        format!(
            "- name: {name}\n  type: smtp\n  host: 127.0.0.1\n  port: {port}\n  tls: starttls\n  from: anomalyd@web-1.example\n  to: [ops@example.com]\n  retry_initial: 1h\n  retry_max: 1h\n  timeout: 3s\n{extra}"
        )
    };
    let ca = format!("  ca_file: {}\n", p("ca.pem").display());
    let sinks = sinks_from_yaml(&format!(
        "sinks:\n{}{}{}",
        sink(
            "good",
            &format!("  user: bot\n  password_file: {}\n{ca}", p("pw").display())
        ),
        sink(
            "badpw",
            &format!(
                "  user: bot\n  password_file: {}\n{ca}",
                p("bad-pw").display()
            )
        ),
        sink(
            "noca",
            &format!("  user: bot\n  password_file: {}\n", p("pw").display())
        ),
    ))
    .expect("config");
    let db = p("tickets.db");
    for (i, name) in ["good", "badpw", "noca"].iter().enumerate() {
        let id = format!("d{i}");
        enqueue(
            &db,
            name,
            &[delivery(&id, "INC-1", "fpA", DeliveryKind::Open, 0)],
        );
    }
    let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
    let rep = d.run_once(60_000);
    let conn = rusqlite::Connection::open(&db).expect("db");
    let errors: Vec<(String, Option<String>)> = anomalyd::tickets::outbox::rows(&conn)
        .expect("rows")
        .into_iter()
        .map(|r| (r.sink, r.last_error))
        .collect();
    // Only the sink that trusts the certificate and has the right password delivers;
    // the others fail (and would retry), nothing is lost.
    assert_eq!((rep.delivered, rep.failed), (1, 2), "{rep:?} {errors:?}");
    let error = |sink: &str| {
        errors
            .iter()
            .find(|(s, _)| s == sink)
            .and_then(|(_, e)| e.clone())
            .unwrap_or_default()
    };
    assert!(error("noca").contains("certificate"), "{errors:?}");
    assert!(error("badpw").starts_with("smtp 127.0.0.1"), "{errors:?}");
    let mails: Vec<String> = std::fs::read_dir(p("mail").join("new"))
        .expect("maildir/new")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("read"))
        .collect();
    assert_eq!(mails.len(), 1);
    let (h, _) = parse_mail(&mails[0]);
    assert_eq!(header(&h, "message-id"), "<d0@anomalyd>");
    // The server saw one good login (over TLS: aiosmtpd refuses AUTH before it) and
    // one bad one; the sink without the CA never got as far as logging in.
    let logins = std::fs::read_to_string(p("logins")).expect("logins");
    let mut lines: Vec<&str> = logins.lines().collect();
    lines.sort();
    assert_eq!(lines, ["bot bad", "bot ok"]);
}

#[test]
fn a_ca_file_needs_tls_and_must_exist() {
    let errs = sinks_from_yaml(
        "sinks:\n- {name: m, type: smtp, host: 127.0.0.1, tls: none, from: a@example.com, to: [b@example.com], ca_file: /etc/hostname}\n- {name: m2, type: smtp, host: 127.0.0.1, from: a@example.com, to: [b@example.com], ca_file: /nonexistent/ca.pem}\n",
    )
    .expect_err("invalid");
    let all = errs.join("\n");
    assert!(
        all.contains("tickets.sinks[0].ca_file: needs tls: starttls or tls"),
        "{all}"
    );
    assert!(
        all.contains("tickets.sinks[1].ca_file: cannot read /nonexistent/ca.pem"),
        "{all}"
    );
}

/// A quoted-printable body as text (lettre encodes long or non-ASCII lines so).
fn unquote(body: &str) -> String {
    let b = body.replace("=\n", "");
    let b = b.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1..i + 3)) {
            (b'=', Some(h)) => {
                let h = std::str::from_utf8(h).unwrap_or("");
                out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mail sent after a remediation run says what ran, its result and that it is
/// not verified yet, and carries the diagnosis; an oversized report is cut, not
/// refused.
#[test]
fn the_mail_after_a_run_has_the_run_its_result_and_the_diagnosis() {
    for (dirs, huge) in [(0, false), (12_000, true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("mail");
        let (_smtpd, port) = smtpd(&maildir);
        let sinks = sinks_from_yaml(&format!(
            "sinks:\n- {{name: mail, type: smtp, host: 127.0.0.1, port: {port}, tls: none, from: 'anomalyd@web-1.example', to: [ops@example.com]}}\n"
        ))
        .expect("config");
        let db = dir.path().join("tickets.db");
        ticket_with_evidence(&db, &["mail"], dirs);
        let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
        let rep = d.run_once(anomalyd::sample::now_ms());
        assert_eq!((rep.delivered, rep.failed), (3, 0), "{rep:?}");
        let bodies: Vec<String> = std::fs::read_dir(maildir.join("new"))
            .expect("maildir/new")
            .map(|e| {
                let text = std::fs::read_to_string(e.expect("entry").path()).expect("read");
                let (h, b) = parse_mail(&text);
                if header(&h, "content-transfer-encoding") == "quoted-printable" {
                    unquote(&b)
                } else {
                    b
                }
            })
            .collect();
        assert_eq!(bodies.len(), 3);
        let after_run = bodies
            .iter()
            .find(|b| b.starts_with("remediation \"clean-app-logs\": exit 0 (ok, 0.3 s)"))
            .expect("the mail after the run");
        for needle in [
            "## Remediation",
            "exit 0 (ok, 0.3 s) (verification pending",
            "## Diagnosis",
            "| 4242 | `gzip` | 97 % |",
        ] {
            assert!(after_run.contains(needle), "missing {needle:?}");
        }
        assert_eq!(after_run.contains("[... cut: the report has"), huge);
        if huge {
            let n = after_run.chars().count();
            assert!((900_000..1_001_000).contains(&n), "{n}");
        }
    }
}
