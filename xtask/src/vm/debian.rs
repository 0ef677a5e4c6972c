//! Which Debian kernel packages to test, resolved from the `linux-image-amd64` metapackage of
//! each suite (never a pinned ABI), downloaded once and cached.
use super::apt::{self, Apt};
use super::cmd;
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Re-resolve the ABIs at most this often.
const RESOLVE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// A kernel series the test bed boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Series {
    /// bookworm's own kernel (bookworm, -updates, -security: apt's candidate).
    V6_1,
    /// bookworm-backports' kernel.
    V6_12,
}

impl Series {
    pub fn name(self) -> &'static str {
        match self {
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
        }
    }

    /// The `linux-image-amd64` version this series resolves to.
    fn meta_version(self, apt: &Apt) -> Result<String> {
        match self {
            Series::V6_1 => apt.candidate("linux-image-amd64"),
            Series::V6_12 => {
                let rec = apt
                    .show("linux-image-amd64/bookworm-backports")?
                    .context("bookworm-backports has no linux-image-amd64")?;
                apt::field(&rec, "Version")
                    .context("linux-image-amd64 in bookworm-backports has no Version")
            }
        }
    }
}

/// One resolved kernel: its ABI and the .deb files of what it needs.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub series: Series,
    /// e.g. `6.1.0-56` or `6.12.95+deb12` (the `linux-image-<abi>-amd64` part).
    pub abi: String,
    pub version: String,
    /// (package, version) pairs.
    pub packages: Vec<(String, String)>,
}

impl Resolved {
    /// The local .deb of `package` (must have been downloaded); one `*` in `package` matches
    /// any text, e.g. `linux-headers-*-common`.
    pub fn deb(&self, paths: &Paths, package: &str) -> Result<PathBuf> {
        let matches = |n: &str| match package.split_once('*') {
            Some((pre, suf)) => {
                n.len() >= pre.len() + suf.len() && n.starts_with(pre) && n.ends_with(suf)
            }
            None => n == package,
        };
        let (name, ver) = self
            .packages
            .iter()
            .find(|(n, _)| matches(n))
            .with_context(|| {
                format!(
                    "{package} is not among the {} kernel's packages",
                    self.series.name()
                )
            })?;
        find_deb(&paths.debs(), name, ver)?
            .with_context(|| format!("{name} {ver} was not downloaded"))
    }
}

/// Resolves (or loads the cached resolution of) each series and makes sure its packages are in
/// the cache, downloading what is missing.
pub fn fetch(paths: &Paths, series: &[Series]) -> Result<Vec<Resolved>> {
    cmd::mkdir(&paths.debs())?;
    let apt = Apt::new(&paths.apt())?;
    let mut updated = false;
    let mut out = Vec::new();
    for &s in series {
        let cached = load(paths, s).ok().flatten();
        if let Some((r, age)) = cached.as_ref().filter(|(_, age)| *age < RESOLVE_EVERY) {
            match download_missing(paths, &apt, r, &mut updated) {
                Ok(()) => {
                    println!(
                        "vm: {} kernel: ABI {} ({}), resolved {} h ago",
                        s.name(),
                        r.abi,
                        r.version,
                        age.as_secs() / 3600
                    );
                    out.push(r.clone());
                    continue;
                }
                Err(e) => println!(
                    "vm: cached {} packages cannot be fetched ({e:#}); resolving again",
                    s.name()
                ),
            }
        }
        match resolve_and_download(paths, &apt, s, &mut updated) {
            Ok(r) => out.push(r),
            // Offline with a stale resolution whose packages are all here: use it, say so.
            Err(e) => {
                match cached.filter(|(r, _)| download_missing(paths, &apt, r, &mut true).is_ok()) {
                    Some((r, _)) => {
                        println!(
                            "vm: warning: cannot resolve the {} kernel ({e:#}); using the cached ABI {}",
                            s.name(),
                            r.abi
                        );
                        out.push(r);
                    }
                    None => return Err(e),
                }
            }
        }
    }
    Ok(out)
}

fn resolve_and_download(
    paths: &Paths,
    apt: &Apt,
    s: Series,
    updated: &mut bool,
) -> Result<Resolved> {
    if !*updated {
        println!(
            "vm: updating the private apt lists ({})",
            paths.apt().display()
        );
        apt.update()?;
        *updated = true;
    }
    let r = resolve(apt, s)?;
    println!(
        "vm: {} kernel resolves to ABI {} ({})",
        s.name(),
        r.abi,
        r.version
    );
    download_missing(paths, apt, &r, updated)?;
    save(paths, &r)?;
    Ok(r)
}

fn resolve(apt: &Apt, s: Series) -> Result<Resolved> {
    let version = s.meta_version(apt)?;
    let meta = apt
        .show(&format!("linux-image-amd64={version}"))?
        .with_context(|| format!("linux-image-amd64 {version} vanished from the lists"))?;
    let image = apt::depends(&meta)
        .into_iter()
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-amd64"))
        .with_context(|| {
            format!("linux-image-amd64 {version} depends on no linux-image-*-amd64")
        })?;
    let abi = image["linux-image-".len()..image.len() - "-amd64".len()].to_string();
    let want_prefix = format!("{}.", s.name());
    if !abi.starts_with(&want_prefix) {
        println!(
            "vm: warning: the {} series now resolves to ABI {abi}",
            s.name()
        );
    }

    let unsigned = format!("linux-image-{abi}-amd64-unsigned");
    let image_pkg = if apt.show(&format!("{unsigned}={version}"))?.is_some() {
        unsigned
    } else {
        image
    };
    let headers = format!("linux-headers-{abi}-amd64");
    let hrec = apt
        .show(&format!("{headers}={version}"))?
        .with_context(|| format!("{headers} {version} is not in the lists"))?;
    let hdeps = apt::depends(&hrec);
    let common = hdeps
        .iter()
        .find(|d| d.starts_with("linux-headers-") && d.ends_with("-common"))
        .with_context(|| format!("{headers} depends on no linux-headers-*-common"))?
        .clone();
    let kbuild = hdeps
        .iter()
        .find(|d| d.starts_with("linux-kbuild-"))
        .with_context(|| format!("{headers} depends on no linux-kbuild-*"))?
        .clone();
    let pahole = apt.candidate("pahole")?;
    let packages = vec![
        (image_pkg, version.clone()),
        (headers, version.clone()),
        (common, version.clone()),
        (kbuild, version.clone()),
        ("pahole".to_string(), pahole),
    ];
    Ok(Resolved {
        series: s,
        abi,
        version,
        packages,
    })
}

fn download_missing(paths: &Paths, apt: &Apt, r: &Resolved, updated: &mut bool) -> Result<()> {
    let mut missing = Vec::new();
    for (name, ver) in &r.packages {
        if find_deb(&paths.debs(), name, ver)?.is_none() {
            missing.push(format!("{name}={ver}"));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !apt.has_lists() && !*updated {
        println!(
            "vm: updating the private apt lists ({})",
            paths.apt().display()
        );
        apt.update()?;
        *updated = true;
    }
    println!("vm: downloading {}", missing.join(" "));
    apt.download(&missing, &paths.debs())?;
    for (name, ver) in &r.packages {
        if find_deb(&paths.debs(), name, ver)?.is_none() {
            bail!(
                "apt-get download of {name} {ver} left no .deb in {}",
                paths.debs().display()
            );
        }
    }
    Ok(())
}

/// `apt-get download` names files `<name>_<version, ':' as %3a>_<arch>.deb`.
fn find_deb(dir: &Path, name: &str, version: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{name}_{}_", version.replace(':', "%3a"));
    let rd = std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    Ok(rd.flatten().map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
    }))
}

fn save(paths: &Paths, r: &Resolved) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut text = format!("abi {}\nversion {}\nresolved {now}\n", r.abi, r.version);
    for (n, v) in &r.packages {
        text.push_str(&format!("deb {n} {v}\n"));
    }
    let path = paths.resolved(r.series.name());
    if let Some(dir) = path.parent() {
        cmd::mkdir(dir)?;
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The cached resolution and its age.
fn load(paths: &Paths, s: Series) -> Result<Option<(Resolved, Duration)>> {
    let path = paths.resolved(s.name());
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let (mut abi, mut version, mut at, mut packages) = (None, None, None, Vec::new());
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match (w.next(), w.next(), w.next()) {
            (Some("abi"), Some(v), None) => abi = Some(v.to_string()),
            (Some("version"), Some(v), None) => version = Some(v.to_string()),
            (Some("resolved"), Some(v), None) => at = v.parse::<u64>().ok(),
            (Some("deb"), Some(n), Some(v)) => packages.push((n.to_string(), v.to_string())),
            _ => bail!("{}: unexpected line {line:?}", path.display()),
        }
    }
    let (Some(abi), Some(version), Some(at)) = (abi, version, at) else {
        bail!("{}: incomplete", path.display())
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let age = Duration::from_secs(now.saturating_sub(at));
    Ok(Some((
        Resolved {
            series: s,
            abi,
            version,
            packages,
        },
        age,
    )))
}
