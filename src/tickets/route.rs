//! Routing: who a new ticket goes to. Rules in `tickets.routing.routes`, the first
//! whose conditions all hold wins, and set the assignee, a team (optionally taking
//! turns among its members) and/or the sinks that get the ticket. Conditions: label,
//! severity (at least this urgent), resource and host name (anchored regular
//! expressions), and the time of day (`hours: "08:00-18:00"`, the end excluded; a
//! range may wrap past midnight) at the ticket's opening.
//!
//! Times of day are read at a fixed offset from UTC (`routing.utc_offset`, default
//! `+00:00`), not the machine's time zone: a rule means the same on every host and in
//! a replay, whatever TZ says. There is no daylight-saving switch: change the offset
//! with the season, or write one rule per half-year.
//!
//! The route is decided once, when the ticket first opens (the store records it on
//! the timeline as `routed`); a reopened ticket keeps its route, and `tickets assign`
//! overrides the assignee at any time.

use serde_yaml::Value;

use crate::config::reader::{show, Pattern, Reader};
use crate::incident::{Incident, Label, Severity};

/// Conditions of one route; unset ones are not checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct When {
    pub label: Option<Label>,
    /// The incident is at least this urgent (`P1` matches P0 and P1).
    pub severity: Option<Severity>,
    pub resource: Option<Pattern>,
    pub host: Option<Pattern>,
    /// Minutes after midnight at the configured offset: `[from, to)`, wrapping when
    /// `to <= from`.
    pub hours: Option<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub when: When,
    pub assignee: Option<String>,
    pub team: Option<String>,
    /// Only these sinks get the ticket; `None`: all of them.
    pub sinks: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub name: String,
    pub members: Vec<String>,
    /// Each new ticket routed to the team goes to the next member in turn; otherwise
    /// the ticket is assigned to the team's name.
    pub round_robin: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Routing {
    /// Offset from UTC, in minutes, at which `hours` are read.
    pub utc_offset_minutes: i32,
    pub teams: Vec<Team>,
    pub routes: Vec<Route>,
}

/// What routing decided for one ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// Index of the rule in `routes`.
    pub rule: usize,
    pub assignee: Option<String>,
    pub team: Option<String>,
    pub sinks: Option<Vec<String>>,
}

impl When {
    pub fn holds(&self, inc: &Incident, minute_of_day: u32) -> bool {
        self.label.is_none_or(|l| l == inc.label)
            && self.severity.is_none_or(|s| inc.severity <= s)
            && self
                .resource
                .as_ref()
                .is_none_or(|p| inc.resource.as_deref().is_some_and(|r| p.is_match(r)))
            && self.host.as_ref().is_none_or(|p| p.is_match(&inc.host))
            && self.hours.is_none_or(|(from, to)| {
                if from < to {
                    (from..to).contains(&minute_of_day)
                } else {
                    minute_of_day >= from || minute_of_day < to
                }
            })
    }
}

impl Routing {
    /// The minute of the day of `at_ms` at the configured offset.
    pub fn minute_of_day(&self, at_ms: i64) -> u32 {
        let minutes = at_ms.div_euclid(60_000) + i64::from(self.utc_offset_minutes);
        minutes.rem_euclid(1440) as u32
    }

    /// The route of a new ticket opened at `at_ms`. `turns(team)` says how many
    /// tickets the team has been given before (the store counts its `routed`
    /// events), for round-robin.
    pub fn route(
        &self,
        inc: &Incident,
        at_ms: i64,
        turns: impl FnOnce(&str) -> usize,
    ) -> Option<Routed> {
        let minute = self.minute_of_day(at_ms);
        let (rule, r) = self
            .routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.when.holds(inc, minute))?;
        let mut assignee = r.assignee.clone();
        if let Some(team) = r.team.as_ref().and_then(|t| self.team(t)) {
            if assignee.is_none() {
                assignee = Some(if team.round_robin && !team.members.is_empty() {
                    team.members[turns(&team.name) % team.members.len()].clone()
                } else {
                    team.name.clone()
                });
            }
        }
        Some(Routed {
            rule,
            assignee,
            team: r.team.clone(),
            sinks: r.sinks.clone(),
        })
    }

    fn team(&self, name: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.name == name)
    }
}

/// `HH:MM` -> minutes after midnight.
fn clock(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
}

/// `HH:MM-HH:MM`.
fn parse_hours(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let (a, b) = (clock(a)?, clock(b)?);
    (a != b).then_some((a % 1440, b % 1440))
}

/// `+HH:MM` / `-HH:MM` -> minutes.
fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let m = clock(rest)? as i32;
    (m <= 14 * 60).then_some(sign * m)
}

/// Read `tickets.routing`; `sinks` are the configured sinks' names, which a route's
/// `sinks` must be among. Problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str, sinks: &[String]) -> Routing {
    let s = r.section(v, path, &["utc_offset", "teams", "routes"]);
    let offset = s.string(r, "utc_offset", "+00:00");
    let utc_offset_minutes = parse_offset(&offset).unwrap_or_else(|| {
        r.error(
            &s.path("utc_offset"),
            format!("{offset:?} is not an offset from UTC like \"+02:00\" or \"-05:30\""),
        );
        0
    });
    let mut teams: Vec<Team> = Vec::new();
    for (p, v) in s.list(r, "teams") {
        let t = r.section(Some(v), &p, &["name", "members", "round_robin"]);
        let name = t.string(r, "name", "");
        if name.trim().is_empty() {
            r.error(&t.path("name"), "missing (a team needs a name)");
        } else if teams.iter().any(|x| x.name == name) {
            r.error(&t.path("name"), format!("{name:?} is named twice"));
        }
        let members = t.strings(r, "members");
        let round_robin = t.bool(r, "round_robin", false);
        if round_robin && members.is_empty() {
            r.error(&t.path("members"), "round_robin needs at least one member");
        }
        teams.push(Team {
            name,
            members,
            round_robin,
        });
    }
    let mut routes = Vec::new();
    for (p, v) in s.list(r, "routes") {
        let before = r.errors.len();
        let x = r.section(Some(v), &p, &["when", "assignee", "team", "sinks"]);
        let w = r.section(
            x.get("when"),
            &x.path("when"),
            &["label", "severity", "resource", "host", "hours"],
        );
        let labels: Vec<&str> = Label::ALL.iter().map(|l| l.as_str()).collect();
        let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
        let label = w
            .get("label")
            .map(|_| w.one_of(r, "label", &labels, "other"))
            .and_then(|l| Label::parse(&l));
        let severity = w
            .get("severity")
            .map(|_| w.one_of(r, "severity", &severities, "P4"))
            .and_then(|l| Severity::parse(&l));
        let hours = match w.get("hours") {
            None => None,
            Some(Value::String(h)) => parse_hours(h).or_else(|| {
                r.error(
                    &w.path("hours"),
                    format!("{h:?} is not a time range like \"08:00-18:00\""),
                );
                None
            }),
            Some(other) => {
                r.error(
                    &w.path("hours"),
                    format!(
                        "expected a time range like \"08:00-18:00\", got {}",
                        show(other)
                    ),
                );
                None
            }
        };
        let when = When {
            label,
            severity,
            resource: w.pattern(r, "resource", None),
            host: w.pattern(r, "host", None),
            hours,
        };
        let text = |r: &mut Reader, key: &str| -> Option<String> {
            x.get(key)?;
            let v = x.string(r, key, "");
            if v.trim().is_empty() {
                r.error(&x.path(key), "expected a non-empty name");
                return None;
            }
            Some(v.trim().to_string())
        };
        let assignee = text(r, "assignee");
        let team = text(r, "team");
        if let Some(t) = &team {
            if !teams.iter().any(|x| &x.name == t) {
                r.error(&x.path("team"), format!("{t:?} is not one of the teams"));
            }
        }
        let route_sinks = x.get("sinks").map(|_| x.strings(r, "sinks"));
        for (i, name) in route_sinks.iter().flatten().enumerate() {
            if !sinks.contains(name) {
                r.error(
                    &format!("{}[{i}]", x.path("sinks")),
                    format!("{name:?} is not one of tickets.sinks"),
                );
            }
        }
        if assignee.is_none() && team.is_none() && route_sinks.is_none() {
            r.error(
                &p,
                "a route sets assignee, team or sinks (or more than one)",
            );
        }
        if r.errors.len() == before {
            routes.push(Route {
                when,
                assignee,
                team,
                sinks: route_sinks,
            });
        }
    }
    Routing {
        utc_offset_minutes,
        teams,
        routes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::testing::storage_anomaly;

    const H: i64 = 3_600_000;

    fn parse(yaml: &str) -> (Routing, String) {
        let v: Value = serde_yaml::from_str(yaml).expect("yaml");
        let mut r = Reader::default();
        let c = parse_config(
            &mut r,
            Some(&v),
            "tickets.routing",
            &["mail".to_string(), "hook".to_string()],
        );
        (c, r.errors.join("\n"))
    }

    const RULES: &str = "
utc_offset: '+02:00'
teams:
  - {name: storage, members: [alice, bob], round_robin: true}
  - {name: night, members: [carol]}
routes:
  - when: {hours: '22:00-06:00'}
    team: night
  - when: {severity: P1}
    assignee: oncall
    sinks: [mail]
  - when: {label: storage, resource: 'sd[a-c]', host: 'web[0-9]+'}
    team: storage
  - when: {label: cpu}
    sinks: [hook]
";

    /// (incident, UTC hour, rule, assignee, sinks)
    type Row<'a> = (
        &'a Incident,
        i64,
        Option<usize>,
        Option<&'a str>,
        Option<Vec<&'a str>>,
    );

    /// One incident per row, opened at a UTC hour: who gets it.
    #[test]
    fn first_matching_route_wins() {
        let (routing, errors) = parse(RULES);
        assert_eq!(errors, "");
        let base = storage_anomaly("INC-1", 0, 0.9, 1.0);
        let with = |f: &dyn Fn(&mut Incident)| {
            let mut i = base.clone();
            f(&mut i);
            i
        };
        let p1 = with(&|i| i.severity = Severity::P1);
        let p0 = with(&|i| i.severity = Severity::P0);
        let sdz = with(&|i| i.resource = Some("sdz".into()));
        let db = with(&|i| i.host = "db1".into());
        let cpu = with(&|i| i.label = Label::Cpu);
        let net = with(&|i| i.label = Label::Network);
        // (incident, UTC hour, rule, assignee, sinks)
        let table: Vec<Row> = vec![
            // 21:00 UTC is 23:00 at +02:00: night
            (&base, 21, Some(0), Some("night"), None),
            // 03:00 UTC is 05:00: still night; 04:00 UTC is 06:00: day
            (&p1, 3, Some(0), Some("night"), None),
            (&p1, 4, Some(1), Some("oncall"), Some(vec!["mail"])),
            (&p0, 12, Some(1), Some("oncall"), Some(vec!["mail"])),
            (&base, 12, Some(2), Some("alice"), None),
            (&sdz, 12, None, None, None),
            (&db, 12, None, None, None),
            (&cpu, 12, Some(3), None, Some(vec!["hook"])),
            (&net, 12, None, None, None),
        ];
        for (i, (inc, hour, rule, assignee, sinks)) in table.into_iter().enumerate() {
            let got = routing.route(inc, hour * H, |_| 0);
            assert_eq!(got.as_ref().map(|g| g.rule), rule, "row {i}");
            assert_eq!(
                got.as_ref().and_then(|g| g.assignee.as_deref()),
                assignee,
                "row {i}"
            );
            let sinks: Option<Vec<String>> =
                sinks.map(|s| s.iter().map(|x| x.to_string()).collect());
            assert_eq!(got.and_then(|g| g.sinks), sinks, "row {i}");
        }
        // Round-robin: the team's members take turns.
        let turn = |n| routing.route(&base, 12 * H, |_| n).and_then(|g| g.assignee);
        assert_eq!(turn(0).as_deref(), Some("alice"));
        assert_eq!(turn(1).as_deref(), Some("bob"));
        assert_eq!(turn(2).as_deref(), Some("alice"));
    }

    #[test]
    fn bad_routes_are_errors_at_their_path() {
        let (_, errors) = parse(
            "utc_offset: 'CET'\nteams:\n  - {name: a, round_robin: true}\nroutes:\n  \
             - when: {hours: '8-18', severity: P9}\n    team: b\n    sinks: [pager]\n  \
             - when: {label: cpu}\n",
        );
        for want in [
            "tickets.routing.utc_offset: \"CET\" is not an offset",
            "tickets.routing.teams[0].members: round_robin needs at least one member",
            "tickets.routing.routes[0].when.hours: \"8-18\" is not a time range",
            "tickets.routing.routes[0].when.severity: \"P9\" is not one of",
            "tickets.routing.routes[0].team: \"b\" is not one of the teams",
            "tickets.routing.routes[0].sinks[0]: \"pager\" is not one of tickets.sinks",
            "tickets.routing.routes[1]: a route sets assignee, team or sinks",
        ] {
            assert!(errors.contains(want), "{want}\nnot in\n{errors}");
        }
    }
}
