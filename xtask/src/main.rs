//! `cargo xtask`: setup, build, run, test, bench and the VM test bed.

mod bench;
mod dist;
mod service;
mod vm;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, ExitCode, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "mmnotif-trace's development tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the build and the tests need (idempotent; seconds when already done).
    Setup,
    /// Set up, build the release binary, and run it as root (default: the live view with the
    /// built-in workload as traffic). Arguments after `--` go to mmnotif-trace.
    Run {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Set up and run the whole test suite: unit tests, host integration tests (as root), and
    /// the QEMU guest suite.
    Test {
        /// Skip the QEMU guest suite.
        #[arg(long)]
        no_vm: bool,
    },
    /// Measure the tracing overhead on the workload's worst-case loop.
    Bench(bench::BenchArgs),
    /// The QEMU test bed (distribution kernels, the test notifier module, the guest suite).
    Vm(vm::VmArgs),
    /// Build the release under target/dist/: the statically linked binary (eBPF object inside),
    /// its man pages and shell completions, and the Debian package; then install the package
    /// into a throw-away root and check it.
    Dist,
    /// Regenerate docs/kernel-matrix.md (kernel × hook × method) from the last guest run of
    /// every kernel.
    Matrix,
    /// Regenerate the rule enum of docs/check/report.schema.json from the rule table
    /// (probe-user/src/checker/rules.rs).
    Schema,
}

/// The guest suite's default options, as `cargo xtask vm` would parse them.
#[derive(Parser)]
struct VmDefaults {
    #[command(flatten)]
    args: vm::VmArgs,
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

fn setup() -> Result<()> {
    let t = Instant::now();
    let status = Command::new("bash")
        .arg(workspace_root().join("scripts/setup.sh"))
        .status()
        .context("running scripts/setup.sh")?;
    if !status.success() {
        bail!("scripts/setup.sh failed ({status})");
    }
    println!("xtask: setup done in {:.1}s", t.elapsed().as_secs_f64());
    Ok(())
}

/// `cargo` with the user's PATH plus ~/.cargo/bin (where setup installs bpf-linker).
pub fn cargo() -> Command {
    tool(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `program` in the workspace root, with ~/.cargo/bin on the PATH (see [`cargo`]).
fn tool(program: String) -> Command {
    let mut cmd = Command::new(program);
    if let (Ok(home), Ok(path)) = (std::env::var("HOME"), std::env::var("PATH")) {
        cmd.env("PATH", format!("{home}/.cargo/bin:{path}"));
    }
    cmd.current_dir(workspace_root());
    cmd
}

pub fn build_release() -> Result<PathBuf> {
    let status = cargo().args(["build", "--release", "-p", "probe-user"]).status().context("cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p probe-user failed");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"));
    Ok(target.join("release/mmnotif-trace"))
}

fn run(args: &[String]) -> Result<u8> {
    setup()?;
    let bin = build_release()?;
    let mut cmd = if is_root() {
        Command::new(&bin)
    } else {
        let mut c = Command::new("sudo");
        c.arg(&bin);
        c
    };
    let status = cmd.args(args).status().with_context(|| format!("running {}", bin.display()))?;
    Ok(status.code().unwrap_or(1) as u8)
}

/// Runs `cargo test` for the workspace, echoing its output, and counts passed/failed tests.
/// Runs `cargo test <selection> -- --test-threads 1 <test_args>`; returns (passed, failed, ok).
fn cargo_test(selection: &[&str], test_args: &[&str], env: &[(&str, String)]) -> Result<(u64, u64, bool)> {
    let mut cmd = cargo();
    cmd.arg("test").args(selection).args(["--", "--test-threads", "1"]).args(test_args);
    cmd.envs(env.iter().map(|(k, v)| (*k, v)));
    if !is_root() {
        // Test binaries load BPF programs: run them (only them) under sudo.
        cmd.env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER", "sudo -E");
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().context("cargo test")?;
    let out = child.stdout.take().context("cargo test stdout")?;
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(out).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let num = |key: &str| -> u64 {
                rest.split(';')
                    .find(|p| p.trim().ends_with(key))
                    .and_then(|p| p.split_whitespace().rev().nth(1)?.parse().ok())
                    .unwrap_or(0)
            };
            passed += num("passed");
            failed += num("failed");
        }
    }
    let ok = child.wait()?.success();
    Ok((passed, failed, ok))
}

/// The style gate: `cargo fmt --check` and clippy with warnings as errors, each one result.
/// Clippy runs in the same environment as the tests, so the eBPF object is built once for both.
/// probe-ebpf is not a default member (it builds only for the BPF target), so its clippy is a
/// check of its own, run like probe-user's build.rs builds it.
fn lint() -> Result<(u64, u64)> {
    let (mut passed, mut failed) = (0, 0);
    let mut checks: Vec<(&str, Command)> = Vec::new();
    for (name, args) in [
        ("cargo fmt --check", &["fmt", "--all", "--check"][..]),
        ("cargo clippy -D warnings", &["clippy", "--all-targets", "--quiet", "--", "-D", "warnings"]),
    ] {
        let mut cmd = cargo();
        cmd.args(args);
        checks.push((name, cmd));
    }
    checks.push(("probe-ebpf clippy -D warnings", ebpf_clippy()));
    for (name, mut cmd) in checks {
        let status = cmd.status().with_context(|| format!("running {name}"))?;
        if status.success() {
            println!("xtask: lint: {name}: ok");
            passed += 1;
        } else {
            println!("xtask: lint: {name}: FAILED ({status})");
            failed += 1;
        }
    }
    Ok((passed, failed))
}

/// Clippy over probe-ebpf as aya-build compiles it: the nightly toolchain, the BPF target and
/// `-Z build-std=core`. (Clippy does not link, so bpf-linker is not involved.)
fn ebpf_clippy() -> Command {
    let mut cmd = tool("rustup".into());
    cmd.args(["run", "nightly", "cargo", "clippy", "--package", "probe-ebpf", "--bins", "--release", "--quiet"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core", "--", "-D", "warnings"]);
    // The outer cargo's (stable) compiler and cargo must not leak into the nightly build.
    for key in ["RUSTC", "RUSTC_WORKSPACE_WRAPPER", "CARGO"] {
        cmd.env_remove(key);
    }
    cmd
}

fn test(no_vm: bool) -> Result<u8> {
    let started = Instant::now();
    setup()?;
    let (lint_passed, lint_failed) = lint()?;
    // Default members: probe-ebpf only builds for the BPF target.
    let (mut passed, mut failed, mut cargo_ok) = cargo_test(&[], &[], &[])?;
    passed += lint_passed;
    failed += lint_failed;
    if !cargo_ok && failed == 0 {
        failed += 1; // a build failure or a crashed test binary
    }
    // The release: the static binary, man pages, completions and the .deb, which is installed
    // into a throw-away root and checked.
    let t = Instant::now();
    let dist = match dist::run() {
        Ok(d) => {
            let checks = [
                ("dist: package check", dist::check_deb(&d.deb, &d.man_pages)),
                // The unit, under a real systemd booted in a container.
                ("service", service::check(&d.deb)),
            ];
            for (name, outcome) in checks {
                match outcome {
                    Ok(lines) => {
                        for line in lines {
                            println!("xtask: {name}: ok: {line}");
                        }
                        passed += 1;
                    }
                    Err(e) => {
                        println!("xtask: {name}: FAILED: {e:#}");
                        failed += 1;
                    }
                }
            }
            Some(d)
        }
        Err(e) => {
            println!("xtask: dist: FAILED: {e:#}");
            failed += 1;
            None
        }
    };
    println!("xtask: dist took {:.1}s", t.elapsed().as_secs_f64());
    if !no_vm {
        let t = Instant::now();
        // The guests run their scenarios under the tracer too (tests/guest/tracer.sh), the
        // static binary that `cargo xtask dist` ships.
        let reports = match &dist {
            Some(d) => {
                vm::run_reports(&VmDefaults::parse_from(["vm", "--with-binary", &d.binary.to_string_lossy()]).args)
            }
            None => Err(anyhow::anyhow!("no static binary to put in the guests (the dist step failed)")),
        };
        match reports {
            Ok(reports) => {
                let files: Vec<String> = reports
                    .iter()
                    .filter_map(|r| {
                        let o = r.outcome.as_ref().ok()?;
                        let dir = o.files.first()?.parent()?;
                        Some(format!("{}={}", r.name, dir.display()))
                    })
                    .collect();
                if files.len() == reports.len() {
                    // Recordings against the module's counters and the kernel's behaviour.
                    let env = [("MMNOTIF_GUEST_FILES", files.join(","))];
                    let (p, f, ok) = cargo_test(&["-p", "probe-user", "--test", "guest_traces"], &["--ignored"], &env)?;
                    passed += p;
                    failed += f + u64::from(!ok && f == 0);
                    cargo_ok &= ok;
                } else {
                    println!(
                        "xtask: guest recordings missing (received from {} of {} kernels)",
                        files.len(),
                        reports.len()
                    );
                    failed += 1;
                }
                // The kernel matrix the docs show must be what these guests measured.
                if reports.iter().all(|r| r.outcome.is_ok()) {
                    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
                    match vm::matrix::verify(&vm::paths::Paths::new(), &names) {
                        Ok(()) => {
                            println!("xtask: kernel matrix: docs/kernel-matrix.md matches these guests");
                            passed += 1;
                        }
                        Err(e) => {
                            println!("xtask: kernel matrix: FAILED: {e:#}");
                            failed += 1;
                        }
                    }
                }
                for r in &reports {
                    match &r.outcome {
                        Ok(o) => {
                            println!(
                                "xtask: guest {} ({}): {} passed, {} failed, boot+tests {:.0} s",
                                r.name,
                                r.abi,
                                o.pass,
                                o.fail,
                                o.elapsed.as_secs_f64()
                            );
                            for f in &o.failures {
                                println!("xtask: guest {}: {f}", r.name);
                            }
                            passed += u64::from(o.pass);
                            failed += u64::from(o.fail) + u64::from(!o.ok() && o.fail == 0);
                        }
                        Err(e) => {
                            println!("xtask: guest {}: {e:#} (log {})", r.name, r.log.display());
                            failed += 1;
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("xtask: guest suite: {e:#}");
                failed += 1;
            }
        }
        println!("xtask: guest suite took {:.1}s", t.elapsed().as_secs_f64());
    }
    println!("xtask: whole suite took {:.1}s", started.elapsed().as_secs_f64());
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 && cargo_ok { 0 } else { 1 })
}

/// The unit test that checks docs/check/report.schema.json against the rule table; with
/// `MMNOTIF_BLESS=1` it writes the file instead.
const SCHEMA_TEST: &str = "checker::schema::the_schema_rule_enum_is_generated_from_the_rule_table";

/// `cargo xtask schema`: the schema test, blessed, so it rewrites the file from the table.
fn schema() -> Result<u8> {
    let out = cargo()
        .args(["test", "-p", "probe-user", "--lib", "--", "--exact", SCHEMA_TEST])
        .env("MMNOTIF_BLESS", "1")
        .stderr(Stdio::inherit())
        .output()
        .context("cargo test")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    if !out.status.success() {
        bail!("{SCHEMA_TEST} failed ({})", out.status);
    }
    // A filter that matches nothing passes too: make sure the test ran.
    if !stdout.contains("test result: ok. 1 passed") {
        bail!("{SCHEMA_TEST} did not run");
    }
    println!("xtask: wrote {}", workspace_root().join("docs/check/report.schema.json").display());
    Ok(0)
}

/// `cargo xtask dist`: build, then check the package as `cargo xtask test` does.
fn dist_task() -> Result<u8> {
    setup()?;
    let dist = dist::run()?;
    for line in dist::check_deb(&dist.deb, &dist.man_pages)? {
        println!("xtask: dist: ok: {line}");
    }
    for line in service::check(&dist.deb)? {
        println!("xtask: service: ok: {line}");
    }
    Ok(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.task {
        Task::Setup => setup().map(|()| 0),
        Task::Run { args } => run(args),
        Task::Test { no_vm } => test(*no_vm),
        Task::Bench(args) => setup().and_then(|()| bench::run(args)),
        Task::Vm(args) => vm::run(args).map(|()| 0),
        Task::Dist => dist_task(),
        Task::Matrix => vm::matrix::write(&vm::paths::Paths::new()).map(|path| {
            println!("xtask: wrote {}", path.display());
            0
        }),
        Task::Schema => schema(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
