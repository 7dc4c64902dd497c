//! The SMTP sink against a real SMTP server: Debian's `python3-aiosmtpd` (installed by
//! tests/run.sh), started here on loopback with its Maildir handler, so each accepted
//! mail lands as a file we read back.

mod sinks_common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anomalyd::tickets::outbox::Deliverer;
use anomalyd::tickets::DeliveryKind;
use sinks_common::*;

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

#[test]
fn mails_arrive_with_subject_body_and_threading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("mail");
    let port = free_port();
    let child = Command::new("/usr/bin/aiosmtpd")
        .args(["-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd (apt-get install python3-aiosmtpd)");
    let _smtpd = Smtpd(child);
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "aiosmtpd did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

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
