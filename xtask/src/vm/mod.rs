//! The QEMU test bed: Debian distribution kernels (the rows of `kernels.rs`) booted under TCG
//! with the test notifier module and the guest suite. `cargo xtask vm --help`;
//! docs/vm-testbed.md explains the pieces and the cache.
mod apt;
pub(crate) use apt::debian_mirror;
pub(crate) use cmd::require_tool;
mod buildroot;
mod cmd;
mod cpio;
pub(crate) mod debian;
mod guest;
mod hmm;
mod hmm_adapt;
pub(crate) mod initramfs;
mod kernel;
pub(crate) mod kernels;
mod kmod;
mod ksource;
mod kvm_modules;
mod kvm_selftests;
pub(crate) mod matrix;
pub(crate) mod paths;
pub(crate) mod qemu;
mod resolve;
mod revert;
mod root_program;
pub(crate) use root_program::RootProgram;
mod srcbuild;
mod version;

use anyhow::{Context, Result, bail};
use debian::Resolved;
use initramfs::{InitramfsSpec, build_initramfs};
use kernels::KernelRow;
use paths::Paths;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Boot Debian kernels under QEMU and run the guest suite (and an optional command) in them.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct VmArgs {
    /// Which kernel to boot (a row of xtask/src/vm/kernels.rs), or `all`.
    #[arg(long, default_value = "all", value_parser = clap::builder::PossibleValuesParser::new(kernels::choices()))]
    pub kernel: String,
    /// After the tests, open a shell on the guest console (one kernel only); exit it to power off.
    #[arg(long)]
    pub keep: bool,
    /// Per-guest time limit in seconds (default 1800; none with --keep).
    #[arg(long, value_name = "S")]
    pub timeout: Option<u64>,
    /// Copy a statically linked host binary to /usr/local/bin in the guest (the tracer:
    /// target/dist/mmnotif-trace from `cargo xtask dist`).
    #[arg(long = "with-binary", value_name = "PATH")]
    pub with_binary: Vec<PathBuf>,
    /// Do not run the built-in guest suite (the module is still loaded).
    #[arg(long)]
    pub no_suite: bool,
    /// Run only these suite scenarios (repeatable), e.g. list-ops, interval-seq, oom-rfc2019.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Extra kernel command line argument (repeatable).
    #[arg(long = "append", value_name = "ARG")]
    pub append: Vec<String>,
    /// Guest memory.
    #[arg(long, default_value = "1G")]
    pub memory: String,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    pub smp: u32,
    /// How QEMU's TCG runs the vCPUs: `single` (one host thread for all, the test bed's setting)
    /// or `multi` (one thread per vCPU, which crashed guests at patched kernel text and hung
    /// them under traffic, with or without the tracer; for comparison runs only).
    #[arg(long, value_enum, default_value_t = qemu::TcgThreads::Single)]
    pub tcg: qemu::TcgThreads,
    /// Boot the kernels one after the other instead of in parallel.
    #[arg(long)]
    pub sequential: bool,
    /// How many guests run at once (each has --smp vCPUs; TCG gains nothing from more guests
    /// than host cores).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub parallel: usize,
    /// Command to run in the guest after the suite (after `--`); a non-zero exit fails the run.
    #[arg(last = true, value_name = "GUEST COMMAND")]
    pub guest_cmd: Vec<String>,
    /// Programs of each kernel's build root to carry into its guest with their libraries
    /// (`root_program.rs`; the guest benchmark's peer).
    #[arg(skip)]
    pub root_programs: Vec<RootProgram>,
}

impl Default for VmArgs {
    fn default() -> Self {
        VmArgs {
            kernel: "all".into(),
            keep: false,
            timeout: None,
            with_binary: Vec::new(),
            no_suite: false,
            scenarios: Vec::new(),
            append: Vec::new(),
            memory: "1G".into(),
            smp: 2,
            tcg: qemu::TcgThreads::Single,
            sequential: false,
            parallel: 2,
            guest_cmd: Vec::new(),
            root_programs: Vec::new(),
        }
    }
}

/// What one kernel's run produced.
#[derive(Debug)]
pub(crate) struct KernelReport {
    pub name: String,
    pub abi: String,
    /// Kernel extraction, module build and initramfs (after the shared package step).
    pub prepare: Duration,
    pub outcome: Result<qemu::Outcome>,
    pub log: PathBuf,
}

/// `cargo xtask vm`: prints per-kernel results and timings; fails if any kernel failed.
pub(crate) fn run(args: &VmArgs) -> Result<()> {
    let total = Instant::now();
    let reports = run_reports(args)?;
    println!();
    let mut failed = Vec::new();
    for r in &reports {
        let (verdict, detail) = match &r.outcome {
            Ok(o) if o.ok() => {
                ("PASS", format!("pass {} fail {}, boot+tests {:.1} s", o.pass, o.fail, secs(o.elapsed)))
            }
            Ok(o) => ("FAIL", format!("pass {} fail {}, boot+tests {:.1} s", o.pass, o.fail, secs(o.elapsed))),
            Err(e) => ("FAIL", format!("{e:#}")),
        };
        println!(
            "vm: {} (ABI {}): {verdict}: {detail}, prepare {:.1} s; log {}",
            r.name,
            r.abi,
            secs(r.prepare),
            r.log.display()
        );
        if let Ok(o) = &r.outcome {
            for f in &o.failures {
                println!("vm:   {}: {f}", r.name);
            }
        }
        if verdict == "FAIL" {
            failed.push(r.name.clone());
        }
    }
    println!("vm: total {:.1} s", secs(total.elapsed()));
    if !failed.is_empty() {
        bail!("VM tests failed on kernel {}", failed.join(", "));
    }
    Ok(())
}

/// Prepares and boots each selected kernel; the caller decides what a result means.
pub(crate) fn run_reports(args: &VmArgs) -> Result<Vec<KernelReport>> {
    let paths = Paths::new();
    let rows: Vec<&'static KernelRow> = match kernels::by_name(&args.kernel) {
        Some(row) => vec![row],
        None => kernels::KERNELS.iter().filter(|row| included_in_all(&paths, row)).collect(),
    };
    if args.keep && rows.len() > 1 {
        bail!(
            "--keep needs one kernel: add --kernel NAME ({})",
            kernels::KERNELS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
        );
    }
    for b in &args.with_binary {
        if !b.is_file() {
            bail!("--with-binary {}: no such file", b.display());
        }
    }
    let _lock = lock(&paths)?;
    let start = Instant::now();
    let resolved = debian::fetch(&paths, &rows)?;
    // The kselftest harness of the HMM suite comes from the newest kernel's source, booted or not.
    let newest_row = kernels::KERNELS.last().context("no kernels")?;
    let newest = match resolved.iter().find(|r| std::ptr::eq(r.kernel, newest_row)) {
        Some(r) => r.clone(),
        None => debian::fetch(&paths, &[newest_row])?.pop().context("the newest kernel did not resolve")?,
    };
    // Roots are shared by the kernels of one archive and apt takes one lock per root: install
    // every kernel's headers before the kernels are prepared in parallel.
    let mut roots: Vec<(&'static kernels::Archive, buildroot::BuildRoot)> = Vec::new();
    for r in &resolved {
        if !roots.iter().any(|(a, _)| *a == r.kernel.archive) {
            roots.push((r.kernel.archive, buildroot::BuildRoot::open(&paths, r.kernel.archive)?));
        }
        let (_, root) = roots.iter().find(|(a, _)| *a == r.kernel.archive).context("root")?;
        root.install(&r.headers)
            .with_context(|| format!("installing the {} kernel's headers in its build root", r.name()))?;
        let packages: Vec<&str> = args.root_programs.iter().map(|p| p.package).collect();
        root.install_names(&packages)?;
    }
    let programs = guest::build(&paths)?;
    println!("vm: packages and guest programs ready in {:.1} s", secs(start.elapsed()));
    cmd::mkdir(&paths.logs())?;

    let one = |r: &Resolved| -> KernelReport {
        let t = Instant::now();
        let log = paths.logs().join(format!("{}.log", r.name()));
        let root = roots.iter().find(|(a, _)| *a == r.kernel.archive).map(|(_, root)| root);
        let prepared =
            root.context("no build root").and_then(|root| prepare(&paths, r, root, args, &programs, &newest));
        let prepare_time = t.elapsed();
        let outcome = prepared.and_then(|boot| {
            let _ = std::fs::rename(&log, paths.logs().join(format!("{}.prev.log", r.name())));
            qemu::boot(&qemu::Boot { log: log.clone(), ..boot })
        });
        KernelReport { name: r.name().into(), abi: r.abi.clone(), prepare: prepare_time, outcome, log }
    };
    let workers = if args.sequential { 1 } else { args.parallel.max(1) }.min(resolved.len());
    if workers <= 1 {
        return Ok(resolved.iter().map(one).collect());
    }
    // A fixed number of workers take the kernels in table order: more guests than host cores
    // only makes every guest slower under TCG (and risks their time limits).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut reports: Vec<(usize, KernelReport)> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let Some(r) = resolved.get(i) else { break done };
                            let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| one(r)))
                                .unwrap_or_else(|_| KernelReport {
                                    name: r.name().into(),
                                    abi: r.abi.clone(),
                                    prepare: Duration::ZERO,
                                    outcome: Err(anyhow::anyhow!("the {} worker panicked", r.name())),
                                    log: PathBuf::new(),
                                });
                            done.push((i, report));
                        }
                    })
                })
                .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    reports.sort_by_key(|(i, _)| *i);
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}

/// Whether `all` boots `row`: always for Debian's images; a kernel built here only once it has
/// been built (its cold build would take a CI run past its time budget), saying so when not.
fn included_in_all(paths: &Paths, row: &KernelRow) -> bool {
    if row.build.is_none() || srcbuild::recorded(paths, row).is_some() {
        return true;
    }
    println!(
        "vm: skipping kernel {}: it is built from source and not yet built on this machine (the first build \
         took 8-11 min on 2 cores here; docs/vm-testbed.md); `cargo xtask vm --kernel {}` builds it once, and \
         every later run includes it",
        row.name, row.name
    );
    false
}

/// Kernel, module and initramfs for one kernel; returns how to boot it.
fn prepare(
    paths: &Paths,
    r: &Resolved,
    root: &buildroot::BuildRoot,
    args: &VmArgs,
    programs: &[(String, PathBuf)],
    newest: &Resolved,
) -> Result<qemu::Boot> {
    let (vmlinux, module, kvm_modules, hmm, kvm_selftests) = match r.kernel.build {
        Some(build) => {
            let k = srcbuild::kernel(paths, r, root, build, args.kernel == r.name())?;
            let module = kmod::build(paths, r, root, kmod::Against::Built(&k))?;
            // KVM is built into this kernel (guest-kernel.config).
            let not_built = "not built for a kernel the test bed compiles itself";
            let hmm = hmm::HmmSuite::Unsupported(not_built.into());
            let kvm_selftests = kvm_selftests::KvmSelftests::Unsupported(not_built.into());
            (k.vmlinux, module, Vec::new(), hmm, kvm_selftests)
        }
        None => {
            let module = kmod::build(paths, r, root, kmod::Against::Headers)?;
            // Only the KVM scenario needs these; without them it fails on its own, the rest still runs.
            let kvm_modules = kvm_modules::modules(paths, r).unwrap_or_else(|e| {
                eprintln!("[{}] no kvm modules for the guest: {e:#}", r.abi);
                Vec::new()
            });
            let hmm = hmm::build(paths, r, root, newest)?;
            let kvm_selftests = kvm_selftests::build(paths, r, root)?;
            (kernel::vmlinux(paths, r)?, module, kvm_modules, hmm, kvm_selftests)
        }
    };
    // RAM for test_hmm's coherent devices, reserved on every guest so the suite runs on the
    // same machine whatever the scenarios: the guest keeps --memory for itself.
    let reserved_at = hmm::coherent_reservation(&args.memory)?;
    let (reserved, spm) = hmm::coherent_layout(reserved_at);
    let mut append = vec![format!("memmap={}M${reserved_at:#x}", reserved >> 20)];
    append.extend(args.append.iter().cloned());
    let initramfs = paths.build(&r.abi).join("initramfs.cpio");
    let mut extra_files = Vec::new();
    for program in &args.root_programs {
        extra_files.extend(root_program::guest_files(root, program, &paths.build(&r.abi))?);
    }
    let spec = InitramfsSpec {
        module,
        kvm_modules,
        guest_programs: programs.to_vec(),
        extra_binaries: args.with_binary.clone(),
        extra_files,
        guest_cmd: args.guest_cmd.clone(),
        run_suite: !args.no_suite,
        scenarios: args.scenarios.clone(),
        keep: args.keep,
        kernel_lacks: r.kernel.build.map(|b| b.lacks.iter().map(|s| s.to_string()).collect()).unwrap_or_default(),
        hmm,
        hmm_spm: spm.to_vec(),
        kvm_selftests,
    };
    build_initramfs(paths, &initramfs, &spec)?;
    let default_timeout = if args.keep { None } else { Some(1800) };
    Ok(qemu::Boot {
        name: r.name().into(),
        vmlinux,
        initramfs,
        append,
        memory: format!("{}M", (reserved_at + reserved) >> 20),
        smp: args.smp,
        tcg: args.tcg,
        timeout: args.timeout.or(default_timeout).map(Duration::from_secs),
        log: PathBuf::new(),
        interactive: args.keep,
        files_dir: paths.logs().join(format!("{}-files", r.name())),
    })
}

/// One run at a time on this machine: the store is shared by every checkout, and two guest
/// suites at once would share two cores under TCG and run into their time limits.
fn lock(paths: &Paths) -> Result<std::fs::File> {
    cmd::mkdir(&paths.store)?;
    let path = paths.store.join(".lock");
    let f = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    if f.try_lock().is_err() {
        println!("vm: waiting for another `cargo xtask vm` on this machine ({})", path.display());
        f.lock().with_context(|| format!("cannot lock {}", path.display()))?;
    }
    Ok(f)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
