//! One `#[ignore]`d unit test run in a child process of the test binary, for what
//! must not touch the test process itself (its time zone, its allocator's settings):
//! the child test does nothing unless its marker variable is set.

/// Run the test `name` (its full path) alone in a child with `env` set; it must pass
/// and print `done`. Returns what it printed.
#[allow(clippy::expect_used)]
pub(crate) fn run(name: &str, env: &[(&str, &str)], done: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child did not run its test:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(done), "{stdout}\n{stderr}");
    stdout
}
