//! Command-line interface: one subcommand per job. Parsing only; each subcommand's
//! work is in `commands/` (one file each), which calls the library.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "anomalyd", version, about = "Host anomaly detection daemon")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every subcommand that reads or writes state.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Configuration file (YAML). Without it, built-in defaults are used.
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// State directory (history, models, tickets); overrides the file.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: sample, learn, export /metrics.
    Run(RunArgs),
    /// Validate a configuration file and list every problem in it.
    CheckConfig {
        /// The file to check.
        path: PathBuf,
    },
    /// Take one sample and print it.
    Collect(CollectArgs),
    /// Train a model from a CSV file (or from the daemon's history with --history).
    Train(TrainArgs),
    /// Score a CSV file with a model: CSV `score,anomaly,cause` on stdout, after a
    /// `timestamp` column when the input has one.
    Score(ScoreArgs),
    /// Stream a CSV file through the daemon's own pipeline (warm-up, retraining, no
    /// look-ahead): CSV `score,anomaly,cause` on stdout, after a `timestamp` column
    /// when the input has one.
    Replay(ReplayArgs),
    /// Remediation: guard state, re-enabling rules, the privileged runner.
    Remediation {
        #[command(subcommand)]
        command: RemediationCommand,
    },
    /// The ticket store: list, show, acknowledge, assign, resolve.
    Tickets {
        #[command(subcommand)]
        command: TicketsCommand,
    },
    /// Maintenance silences: matching incidents open muted tickets.
    Silence {
        #[command(subcommand)]
        command: SilenceCommand,
    },
    /// The health report of a period: host facts, health score, anomaly timeline,
    /// incidents, forecasts, latency heatmaps, top processes, recommendations.
    Report(ReportArgs),
    /// Evaluate detection quality on a labelled dataset.
    Eval {
        #[command(subcommand)]
        dataset: EvalDataset,
    },
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub common: Common,
    /// CSV or gzip CSV; header optional; a `timestamp` column is time, the rest features.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["history", "prometheus"],
        conflicts_with_all = ["history", "prometheus"]
    )]
    pub input: Option<PathBuf>,
    /// Train from the daemon's history in the state directory instead.
    #[arg(long, conflicts_with = "prometheus")]
    pub history: bool,
    /// Where to write the model (default with --history: <state_dir>/model.json).
    #[arg(long, value_name = "MODEL")]
    pub out: Option<PathBuf>,
    /// Model hyper-parameters (JSON, like models/default.json); default: built in.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// With --history: train even when the history covers less than `model.warmup`
    /// (the daemon would not; such a model has seen too little to know normal).
    #[arg(long, requires = "history")]
    pub force: bool,
    #[command(flatten)]
    pub prometheus: Box<PrometheusArgs>,
}

/// `train --prometheus`: the host's history from Prometheus. Unset flags come from the
/// config's `model.bootstrap` section, then the defaults.
#[derive(Args, Debug, Default)]
pub struct PrometheusArgs {
    /// Train from this Prometheus (or Thanos, Mimir) server's history of a host.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// The host's `instance` label (default: <host name>:9100).
    #[arg(long, value_name = "HOST:PORT", requires = "prometheus")]
    pub instance: Option<String>,
    /// How much history to read, ending now (default 14d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "prometheus")]
    pub range: Option<Duration>,
    /// Resolution of the training rows (default 1m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "prometheus")]
    pub step: Option<Duration>,
    /// Window of the rate()s (default: twice the step, at least 1m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "prometheus")]
    pub rate_window: Option<Duration>,
    /// auto (anomalyd's own series if the instance has them), node or anomalyd.
    #[arg(long, value_name = "SOURCE", requires = "prometheus")]
    pub source: Option<String>,
    /// Label matchers of blackbox_exporter ICMP probes (default job="blackbox"; "" for none).
    #[arg(long, value_name = "MATCHERS", requires = "prometheus")]
    pub blackbox: Option<String>,
    /// Basic auth user (with --password-file).
    #[arg(long, requires = "password_file")]
    pub username: Option<String>,
    /// File holding the basic auth password.
    #[arg(long, value_name = "FILE", requires = "username")]
    pub password_file: Option<PathBuf>,
    /// File holding a bearer token.
    #[arg(long, value_name = "FILE", conflicts_with = "username")]
    pub bearer_token_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) to check the server's certificate with.
    #[arg(long, value_name = "FILE", requires = "prometheus")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, with --key-file.
    #[arg(long, value_name = "FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate (test servers only).
    #[arg(long, requires = "prometheus")]
    pub insecure_skip_verify: bool,
    /// The whole read may take this long (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "prometheus")]
    pub timeout: Option<Duration>,
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// The model to score with (`anomalyd train --out`, or a state directory's
    /// model.json).
    #[arg(long, value_name = "MODEL")]
    pub model: PathBuf,
    /// CSV or gzip CSV with the model's feature columns; header optional; a
    /// `timestamp` column is time.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// `--state-dir DIR` keeps the replay's history and tickets in DIR (default: a
    /// scratch directory, removed afterwards).
    #[command(flatten)]
    pub common: Common,
    /// CSV or gzip CSV; header optional; a `timestamp` column is time (rows in time
    /// order, no time twice), without one rows are one `interval` apart.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Add the forecast columns fault_risk,min_eta_seconds,forecast_events.
    #[arg(long)]
    pub forecast: bool,
}

#[derive(Subcommand, Debug)]
pub enum EvalDataset {
    /// The Server Machine Dataset: train on each machine's train half, score its test
    /// half, compare with its labels (point-wise, no point-adjust).
    Smd {
        /// The dataset directory (with train/, test/, test_label/).
        #[arg(long, value_name = "DIR", default_value = "../shared/datasets/smd")]
        data: PathBuf,
        /// Write <machine>.csv (score,anomaly,cause) here, for ../shared/tools/pointwise.py.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Only these machines (comma-separated), e.g. machine-1-2,machine-2-1.
        #[arg(long, value_delimiter = ',')]
        machines: Vec<String>,
        /// Model hyper-parameters (JSON); default: built in.
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
    },
    /// Lead time of the fault risk on SMD: train and calibrate on each machine's train
    /// half, then count the labelled test segments warned ahead and the false warnings.
    SmdRisk {
        #[command(flatten)]
        common: Common,
        /// The dataset directory (with train/, test/, test_label/).
        #[arg(long, value_name = "DIR", default_value = "../shared/datasets/smd")]
        data: PathBuf,
        /// Only these machines (comma-separated).
        #[arg(long, value_delimiter = ',')]
        machines: Vec<String>,
        /// Model hyper-parameters (JSON); default: built in.
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
        /// Write <machine>.risk.csv (ratio,anomaly,risk,warning,label per test row) here.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// What recorded, labelled series would have paged, through the daemon's own
    /// pipeline: event recall, false tickets per host-day, median delay, per file.
    Incidents {
        #[command(flatten)]
        common: Common,
        /// SMD: each machine's train half then test half (pages counted in the test
        /// half), as ../shared/tools/smd_incidents.py does.
        #[arg(long, value_name = "DIR", conflicts_with = "input")]
        smd: Option<PathBuf>,
        /// With --smd: only these machines (comma-separated).
        #[arg(long, value_delimiter = ',', requires = "smd")]
        machines: Vec<String>,
        /// CSV files (gzip allowed) with a 0/1 label column; pages count after the
        /// model's warm-up and probation.
        #[arg(long, value_name = "FILE", required_unless_present = "smd")]
        input: Vec<PathBuf>,
        /// The label column of --input files.
        #[arg(long, value_name = "NAME", default_value = "label")]
        label_column: String,
        /// Also write the per-file outcomes and totals as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Write a generated host (one-minute rows with daily and weekly cycles, Gaussian
    /// and heavy-tailed noise, ping RTT spikes, a quantised metric, a benign lasting
    /// step) as CSV with a `label` column, for `eval incidents`.
    Generate {
        /// Days of rows.
        #[arg(long, default_value_t = 30.0, value_parser = parse_days)]
        days: f64,
        /// Random seed (the same seed gives the same rows).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Inject the faults: a disk saturated for 40 min, a CPU pegged for 30 min, every
        /// ping lost for 20 min, at 67 %, 80 % and 90 % of the span (days 20, 24 and 27
        /// of 30). The benign memory step is at 41 % either way.
        #[arg(long)]
        faults: bool,
        /// Where to write the CSV; `-` for stdout.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

fn parse_days(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(d) if (0.01..=366.0).contains(&d) => Ok(d),
        Ok(d) => Err(format!("{d} days is not between 0.01 and 366")),
        Err(_) => Err(format!("{s:?} is not a number of days")),
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// Address for /metrics, e.g. 127.0.0.1:9187 or [::1]:9187.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Option<std::net::SocketAddr>,
    /// Sampling interval, e.g. 1s or 500ms (10ms to 1h, as the `interval` key).
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub interval: Option<Duration>,
    /// Ping target (repeatable); replaces the file's list.
    #[arg(long = "ping-target", value_name = "HOST")]
    pub ping_targets: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CollectArgs {
    #[command(flatten)]
    pub common: Common,
    /// Take a single sample (the only mode; kept explicit for scripts).
    #[arg(long)]
    pub once: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Ping target (repeatable).
    #[arg(long = "ping-target", value_name = "HOST")]
    pub ping_targets: Vec<String>,
}

/// Any duration flag: at most 100 years (the commands check their own ranges).
fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::config::reader::parse_duration(s)
}

/// `--interval`: the range of the config's `interval` key.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let (min, max) = crate::settings::INTERVAL_RANGE;
    crate::config::reader::parse_duration_in(s, min, max)
}

/// `silence add --duration`: up to ten years, so its end date is always a real date.
fn parse_silence_duration(s: &str) -> Result<Duration, String> {
    crate::config::reader::parse_duration_in(
        s,
        Duration::from_millis(1),
        Duration::from_secs(10 * 366 * 86_400),
    )
}

fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    crate::config::reader::parse_listen(s)
}

#[derive(Subcommand, Debug)]
pub enum TicketsCommand {
    /// List tickets, newest first.
    List {
        #[command(flatten)]
        common: Common,
        /// Only tickets not resolved yet.
        #[arg(long)]
        open: bool,
        /// JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one ticket: its fields, report and timeline.
    Show {
        #[command(flatten)]
        common: Common,
        /// Ticket id, e.g. INC-42 (or 42).
        id: String,
        /// The ticket as JSON (fields, body, timeline) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge a ticket ("someone is on it"); once: a second ack changes nothing.
    Ack {
        #[command(flatten)]
        common: Common,
        /// Ticket id, e.g. INC-42 (or 42).
        id: String,
        /// Who acknowledges (default: $SUDO_USER, $USER, $LOGNAME, else the name of
        /// the user running the command).
        #[arg(long, value_name = "WHO")]
        by: Option<String>,
    },
    /// Assign a ticket to someone; resolved tickets too (a post-mortem owner).
    Assign {
        #[command(flatten)]
        common: Common,
        /// Ticket id, e.g. INC-42 (or 42).
        id: String,
        /// The assignee, e.g. a user name or a team.
        who: String,
        /// Who assigns (default: as for `ack`).
        #[arg(long, value_name = "WHO")]
        by: Option<String>,
    },
    /// Resolve a ticket with a note. If the problem goes on, the daemon opens it again.
    Resolve {
        #[command(flatten)]
        common: Common,
        /// Ticket id, e.g. INC-42 (or 42).
        id: String,
        /// How it was resolved (the ticket's resolution).
        #[arg(long, value_name = "TEXT")]
        note: String,
        /// Who resolves (default: as for `ack`).
        #[arg(long, value_name = "WHO")]
        by: Option<String>,
    },
    /// Sum up the tickets of a period: counts by label, severity and status, mean
    /// times to acknowledge and to resolve per severity, the most frequent problems,
    /// how remediation did.
    Report {
        #[command(flatten)]
        common: Common,
        /// The period: the tickets that first opened this long before its end, e.g.
        /// 30d or 12h (a minute to ten years).
        #[arg(long, default_value = "30d", value_parser = parse_period)]
        since: Duration,
        /// The end of the period (RFC 3339); default: now.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// md (Markdown) or json.
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
    },
}

/// `tickets report --since`: a minute to ten years.
fn parse_period(s: &str) -> Result<Duration, String> {
    crate::config::reader::parse_duration_in(
        s,
        Duration::from_secs(60),
        Duration::from_secs(10 * 366 * 86_400),
    )
}

#[derive(Subcommand, Debug)]
pub enum SilenceCommand {
    /// Silence matching incidents for a while: they are recorded, their tickets kept
    /// from the sinks.
    Add(SilenceAdd),
    /// List silences (active and future; all with --all).
    List {
        #[command(flatten)]
        common: Common,
        /// Expired silences too.
        #[arg(long)]
        all: bool,
        /// JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a silence.
    Remove {
        #[command(flatten)]
        common: Common,
        /// Silence id, e.g. S-3 (or 3).
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct SilenceAdd {
    #[command(flatten)]
    pub common: Common,
    /// cpu, memory, storage, network, latency or other.
    #[arg(long)]
    pub label: Option<String>,
    /// anomaly, forecast or risk.
    #[arg(long)]
    pub class: Option<String>,
    /// The incident's resource (mount point, device, interface or ping target): an
    /// anchored regular expression, like a remediation rule's `resource`, e.g. /var
    /// or 'sd[a-c]'.
    #[arg(long, value_name = "REGEX")]
    pub resource: Option<String>,
    /// An exact incident fingerprint.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// How long, e.g. 2h or 30m (up to ten years).
    #[arg(long, value_parser = parse_silence_duration)]
    pub duration: Duration,
    /// When it starts (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    pub starts: Option<String>,
    /// Why (shown by `anomalyd silence list`).
    #[arg(long)]
    pub comment: String,
}

#[derive(Subcommand, Debug)]
pub enum RemediationCommand {
    /// Show each rule's guard state: breaker, recent runs, cooldowns.
    Status {
        #[command(flatten)]
        common: Common,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-enable a rule its circuit breaker disabled.
    Enable {
        #[command(flatten)]
        common: Common,
        /// The rule's name.
        rule: String,
    },
    /// Run the requests queued in the spool directory, then exit (what the
    /// privileged `anomalyd-remediate.service` runs).
    Serve {
        #[command(flatten)]
        common: Common,
    },
    /// (internal) Run one command under the subreaper supervisor; used by the daemon.
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        timeout_ms: u64,
        #[arg(long, default_value_t = 2000)]
        grace_ms: u64,
        #[arg(long)]
        uid: Option<u32>,
        #[arg(long)]
        gid: Option<u32>,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag and argument of every (visible) subcommand says what it is for in
    /// `--help`.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "anomalyd", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}

/// `anomalyd report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub common: Common,
    /// The period: this long before its end, e.g. 1h, 24h or 7d (a minute to a year).
    #[arg(long, default_value = "24h", value_name = "DURATION", allow_hyphen_values = true,
          value_parser = crate::view::period::parse_since)]
    pub since: Duration,
    /// The end of the period (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Write the report to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// html (one self-contained page), md (Markdown) or json.
    #[arg(long, default_value = "html", value_parser = ["html", "md", "json"])]
    pub format: String,
}
