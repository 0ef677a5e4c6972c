//! Each kernel row's current packages: resolved against the package mirror on every run (never
//! pinned; `resolve.rs` decides the versions), downloaded into the store and recorded. When the
//! mirror cannot be reached, a complete earlier resolution is used and the run says so.
use super::apt::Apt;
use super::cmd;
use super::kernels::{Archive, KernelRow};
use super::paths::Paths;
use super::resolve::{self, KernelPackages};
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One resolved kernel: its ABI and the .deb files of what it needs.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub kernel: &'static KernelRow,
    /// e.g. `6.1.0-56` or `6.12.95+deb12` (the `linux-image-<abi>-amd64` part).
    pub abi: String,
    pub version: String,
    /// What the guest boots (downloaded into the store): (package, version).
    pub boot: Vec<(String, String)>,
    /// What the module build installs in the build root: (package, version).
    pub headers: Vec<(String, String)>,
    /// The kernel's source package at the image's upstream version (downloaded into the store;
    /// the HMM test suite is built from it, `hmm.rs`), or why there is none.
    pub source: Result<(String, String), String>,
}

impl Resolved {
    pub(crate) fn name(&self) -> &'static str {
        self.kernel.name
    }

    fn new(kernel: &'static KernelRow, p: KernelPackages) -> Self {
        Resolved {
            kernel,
            abi: p.abi,
            version: p.version,
            boot: p.boot,
            headers: p.headers,
            source: Err("not resolved".into()),
        }
    }

    /// The local .deb of the source package (must have been downloaded).
    pub(crate) fn source_deb(&self, paths: &Paths) -> Result<PathBuf, String> {
        let (name, ver) = self.source.as_ref().map_err(Clone::clone)?;
        match find_deb(&paths.debs(), name, ver) {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(format!("{name} {ver} was not downloaded")),
            Err(e) => Err(format!("{e:#}")),
        }
    }

    /// The downloaded packages: what the guest boots and the source package.
    fn debs(&self) -> impl Iterator<Item = &(String, String)> {
        self.boot.iter().chain(self.source.as_ref().ok())
    }

    /// The local .deb of a boot package (must have been downloaded); one `*` in `package`
    /// matches any text, e.g. `linux-modules-*`.
    pub(crate) fn deb(&self, paths: &Paths, package: &str) -> Result<PathBuf> {
        let matches = |n: &str| match package.split_once('*') {
            Some((pre, suf)) => n.len() >= pre.len() + suf.len() && n.starts_with(pre) && n.ends_with(suf),
            None => n == package,
        };
        let (name, ver) = self
            .boot
            .iter()
            .find(|(n, _)| matches(n))
            .with_context(|| format!("{package} is not among the {} kernel's packages", self.name()))?;
        find_deb(&paths.debs(), name, ver)?.with_context(|| format!("{name} {ver} was not downloaded"))
    }

    /// True when every boot package's .deb is in the store (the build root keeps the headers).
    fn complete(&self, paths: &Paths) -> bool {
        self.boot.iter().all(|(n, v)| find_deb(&paths.debs(), n, v).ok().flatten().is_some())
    }

    fn summary(&self) -> String {
        let list: Vec<String> = self.boot.iter().chain(&self.headers).map(|(n, v)| format!("{n} {v}")).collect();
        format!("ABI {}: {}", self.abi, list.join(", "))
    }
}

/// Resolves each row against the mirror, downloads what is missing, and records the result;
/// falls back to a complete recorded resolution when the mirror cannot be reached.
pub(crate) fn fetch(paths: &Paths, rows: &[&'static KernelRow]) -> Result<Vec<Resolved>> {
    cmd::mkdir(&paths.debs())?;
    // One private apt per archive, updated once per run.
    let mut archives: Vec<(&Archive, Result<Apt, String>)> = Vec::new();
    let mut out = Vec::new();
    for &row in rows {
        if !archives.iter().any(|(a, _)| *a == row.archive) {
            archives.push((row.archive, open_archive(paths, row.archive)));
        }
        let apt = archives.iter().find(|(a, _)| *a == row.archive).map(|(_, apt)| apt).context("archive list")?;
        let cached = load(paths, row).ok().flatten();
        let r = match apt {
            Ok(apt) => {
                let packages = resolve::resolve_row(apt, row)?;
                let mut r = Resolved::new(row, packages.clone());
                r.source = match row.build {
                    Some(_) => Err(format!("the {} kernel is built here from its source", row.name)),
                    None => resolve::resolve_source(apt, row, &packages).map_err(|e| format!("{e:#}")),
                };
                if let Err(why) = &r.source {
                    println!("vm: {}: no kernel source package: {why}", row.name);
                }
                let was = cached
                    .as_ref()
                    .filter(|(c, _)| c.boot != r.boot || c.headers != r.headers)
                    .map(|(c, _)| format!(" (was {})", c.summary()))
                    .unwrap_or_default();
                println!("vm: {} kernel resolves to {}{was}", row.name, r.summary());
                download_missing(paths, apt, &r)?;
                save(paths, &r)?;
                r
            }
            Err(reason) => match cached.filter(|(c, _)| c.complete(paths)) {
                Some((r, age)) => {
                    println!(
                        "vm: warning: the package mirror cannot be reached ({reason}); using the {} kernel \
                         resolved {} h ago from the store ({})",
                        row.name,
                        age.as_secs() / 3600,
                        r.summary()
                    );
                    r
                }
                None => bail!(
                    "kernel {}: the package mirror cannot be reached ({reason}), and {} holds no complete \
                     earlier resolution to fall back to",
                    row.name,
                    paths.store.display()
                ),
            },
        };
        out.push(r);
    }
    prune(paths);
    Ok(out)
}

/// Writes the archive's private apt configuration and updates its lists; the error, as one
/// line, when the mirror cannot be reached.
fn open_archive(paths: &Paths, archive: &Archive) -> Result<Apt, String> {
    let dir = paths.apt(archive.name);
    let apt = Apt::new(&dir, archive).map_err(|e| format!("{e:#}"))?;
    println!("vm: updating the private apt lists of {} ({})", archive.name, dir.display());
    apt.update().map_err(|e| {
        let text = format!("{e:#}");
        let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("apt-get update failed");
        last.trim().to_string()
    })?;
    Ok(apt)
}

fn download_missing(paths: &Paths, apt: &Apt, r: &Resolved) -> Result<()> {
    let mut missing = Vec::new();
    for (name, ver) in r.debs() {
        if find_deb(&paths.debs(), name, ver)?.is_none() {
            missing.push(format!("{name}={ver}"));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    println!("vm: downloading {}", missing.join(" "));
    apt.download(&missing, &paths.debs())?;
    for (name, ver) in r.debs() {
        if find_deb(&paths.debs(), name, ver)?.is_none() {
            bail!("apt-get download of {name} {ver} left no .deb in {}", paths.debs().display());
        }
    }
    Ok(())
}

/// `apt-get download` names files `<name>_<version, ':' as %3a>_<arch>.deb`.
fn find_deb(dir: &Path, name: &str, version: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{name}_{}_", version.replace(':', "%3a"));
    let rd = std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    Ok(rd.flatten().map(|e| e.path()).find(|p| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
    }))
}

/// Removes .deb files and extracted kernels that no recorded resolution names any more (the
/// mirror has moved on); best effort, a failure only costs disk.
fn prune(paths: &Paths) {
    let records: Vec<Resolved> =
        super::kernels::KERNELS.iter().filter_map(|k| load(paths, k).ok().flatten().map(|(r, _)| r)).collect();
    let keep_debs: BTreeSet<String> =
        records.iter().flat_map(|r| r.debs()).map(|(n, v)| format!("{n}_{}_", v.replace(':', "%3a"))).collect();
    let keep_abis: BTreeSet<&str> = records.iter().map(|r| r.abi.as_str()).collect();
    let entries = |d: PathBuf| std::fs::read_dir(d).into_iter().flatten().flatten();
    for e in entries(paths.debs()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".deb") && !keep_debs.iter().any(|k| name.starts_with(k)) {
            println!("vm: removing {name} (no longer resolved)");
            let _ = std::fs::remove_file(e.path());
        }
    }
    for e in entries(paths.kernels()) {
        let abi = e.file_name().to_string_lossy().into_owned();
        if !keep_abis.contains(abi.as_str()) {
            println!("vm: removing the extracted kernel {abi} (no longer resolved)");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn save(paths: &Paths, r: &Resolved) -> Result<()> {
    let mut text = format!("abi {}\nversion {}\nresolved {}\n", r.abi, r.version, now());
    for (n, v) in &r.boot {
        text.push_str(&format!("boot {n} {v}\n"));
    }
    for (n, v) in &r.headers {
        text.push_str(&format!("headers {n} {v}\n"));
    }
    if let Ok((n, v)) = &r.source {
        text.push_str(&format!("source {n} {v}\n"));
    }
    let path = paths.resolved(r.name());
    if let Some(dir) = path.parent() {
        cmd::mkdir(dir)?;
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The recorded resolution of `kernel` and its age.
fn load(paths: &Paths, kernel: &'static KernelRow) -> Result<Option<(Resolved, Duration)>> {
    let path = paths.resolved(kernel.name);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let (mut abi, mut version, mut at) = (None, None, None);
    let (mut boot, mut headers, mut source) = (Vec::new(), Vec::new(), Err("no source package recorded".to_string()));
    for (i, line) in text.lines().enumerate() {
        let mut w = line.split_whitespace();
        match (w.next(), w.next(), w.next()) {
            (Some("abi"), Some(v), None) => abi = Some(v.to_string()),
            (Some("version"), Some(v), None) => version = Some(v.to_string()),
            (Some("resolved"), Some(v), None) => at = v.parse::<u64>().ok(),
            (Some("boot"), Some(n), Some(v)) => boot.push((n.to_string(), v.to_string())),
            (Some("headers"), Some(n), Some(v)) => headers.push((n.to_string(), v.to_string())),
            (Some("source"), Some(n), Some(v)) => source = Ok((n.to_string(), v.to_string())),
            _ => bail!("{}:{}: unexpected line {line:?}", path.display(), i + 1),
        }
    }
    let (Some(abi), Some(version), Some(at)) = (abi, version, at) else { bail!("{}: incomplete", path.display()) };
    let age = Duration::from_secs(now().saturating_sub(at));
    Ok(Some((Resolved { kernel, abi, version, boot, headers, source }, age)))
}
