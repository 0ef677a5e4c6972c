//! Which packages make up a kernel row's current kernel, worked out from what the archive offers
//! (`apt-cache policy` and `apt-cache show` texts) the way apt would satisfy the dependencies.
//! The image's own dependencies say how it is packaged: up to 6.x one `linux-image-*` holds the
//! kernel and modules; from 7.x it depends on `linux-binary-*` (vmlinuz) and `linux-modules-*`.
//! Packages of one kernel do not share one Debian revision (the headers of 6.1.192-2 depend on
//! `linux-kbuild-6.1 (>= 6.1.192-2)`, satisfied by 6.1.192-3), so each is resolved on its own
//! and only the upstream kernel version must agree. No I/O here: the texts come from an
//! [`AptTexts`], the live archive or a recording.
use super::kernels::{Current, KernelRow};
use super::version::{DebVersion, Relation, parse_depends};
use anyhow::{Context, Result, bail};

/// The two apt-cache answers the resolver reads.
pub(super) trait AptTexts {
    /// `apt-cache policy PACKAGE`; empty when the package is unknown.
    fn policy(&self, package: &str) -> Result<String>;
    /// `apt-cache show PACKAGE` (every version); empty when the package is unknown.
    fn show(&self, package: &str) -> Result<String>;
}

/// The packages of one kernel, each as (package, version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct KernelPackages {
    /// e.g. `6.1.0-56` or `7.2.13+deb14` (the `linux-image-<abi>-amd64` part).
    pub abi: String,
    /// The image's version (the metapackage's dependency).
    pub version: String,
    /// What the guest boots, downloaded: the image, or its binary and modules packages.
    pub boot: Vec<(String, String)>,
    /// What a module build needs, installed in the build root: headers, `-common`, kbuild.
    pub headers: Vec<(String, String)>,
}

/// One version an archive offers, and the suites that offer it.
#[derive(Clone, Debug)]
struct Offer {
    version: DebVersion,
    suites: Vec<String>,
}

#[derive(Debug, Default)]
struct Policy {
    candidate: Option<DebVersion>,
    offers: Vec<Offer>,
}

/// Reads the block of `package` in `apt-cache policy` output.
fn parse_policy(text: &str, package: &str) -> Policy {
    let mut policy = Policy::default();
    let mut in_block = false;
    let mut in_table = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_block = line.trim_end().strip_suffix(':') == Some(package);
            in_table = false;
            continue;
        }
        if !in_block {
            continue;
        }
        let t = line.trim();
        if let Some(c) = t.strip_prefix("Candidate:") {
            let c = c.trim();
            policy.candidate = (c != "(none)").then(|| DebVersion::new(c));
        } else if t == "Version table:" {
            in_table = true;
        } else if in_table {
            // A version line: `[***] VERSION PRIORITY`; an origin line: `PRIORITY URI SUITE/COMP ARCH Packages`.
            let words: Vec<&str> = t.trim_start_matches("*** ").split_whitespace().collect();
            match words.as_slice() {
                [version, prio] if prio.parse::<i32>().is_ok() => {
                    policy.offers.push(Offer { version: DebVersion::new(version), suites: Vec::new() })
                }
                [_prio, _uri, dist, ..] => {
                    if let Some(o) = policy.offers.last_mut() {
                        o.suites.push(dist.split('/').next().unwrap_or(dist).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    policy
}

/// The stanza of `package` at `version` in `apt-cache show` output.
fn record<'a>(text: &'a str, package: &str, version: &DebVersion) -> Option<&'a str> {
    text.split("\n\n").find(|stanza| {
        field(stanza, "Package").as_deref() == Some(package)
            && field(stanza, "Version").is_some_and(|v| DebVersion::new(&v) == *version)
    })
}

fn field(stanza: &str, name: &str) -> Option<String> {
    stanza.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then(|| v.trim().to_string())
    })
}

/// What one package must be: its name, why it is needed, and which versions fit.
struct Want<'a> {
    package: String,
    needed_by: String,
    relation: Option<&'a Relation>,
    /// The upstream kernel version it must agree with, when it is part of the kernel.
    upstream: Option<&'a str>,
}

/// Picks the version apt would: the candidate when it fits, otherwise the highest offer that
/// fits. Errors are one line naming the package, the requirement and what is offered.
fn choose(apt: &dyn AptTexts, kernel: &str, want: &Want) -> Result<DebVersion> {
    let policy = parse_policy(&apt.policy(&want.package)?, &want.package);
    let mut offered: Vec<DebVersion> = policy.offers.iter().map(|o| o.version.clone()).collect();
    if offered.is_empty() {
        offered.extend(policy.candidate.clone());
    }
    if offered.is_empty() {
        bail!("kernel {kernel}: {} (needed by {}) is not offered by the package mirror", want.package, want.needed_by);
    }
    let satisfies = |v: &DebVersion| want.relation.is_none_or(|r| r.allows(v));
    let agrees = |v: &DebVersion| want.upstream.is_none_or(|u| v.upstream() == u);
    let fits = |v: &DebVersion| satisfies(v) && agrees(v);
    if let Some(c) = policy.candidate.as_ref().filter(|c| fits(c)) {
        return Ok(c.clone());
    }
    if let Some(best) = offered.iter().filter(|v| fits(v)).max() {
        return Ok(best.clone());
    }
    let list = offered.iter().map(DebVersion::as_str).collect::<Vec<_>>().join(", ");
    let wanted = want.relation.map_or(want.package.clone(), Relation::to_string);
    match want.upstream.filter(|_| offered.iter().any(satisfies)) {
        Some(up) => bail!(
            "kernel {kernel}: packages disagree on the upstream version: the image is {up}, but {wanted} \
             (needed by {}) is offered only as {list}",
            want.needed_by
        ),
        None => bail!(
            "kernel {kernel}: {wanted} (needed by {}) cannot be satisfied: the package mirror offers {list}",
            want.needed_by
        ),
    }
}

/// The dependency of `stanza` on a package whose name matches `pred` (first alternative that does).
fn dependency(stanza: &str, pred: impl Fn(&str) -> bool) -> Option<Relation> {
    parse_depends(&field(stanza, "Depends")?).into_iter().flatten().find(|r| pred(&r.package))
}

/// Resolves `row`'s current kernel against what `apt` offers.
pub(super) fn resolve(apt: &dyn AptTexts, row: &KernelRow) -> Result<KernelPackages> {
    let k = row.name;
    let meta = "linux-image-amd64";
    let policy = parse_policy(&apt.policy(meta)?, meta);
    let meta_version = match &row.current {
        Current::Candidate => policy.candidate.clone(),
        Current::FromSuite(suite) => {
            policy.offers.iter().filter(|o| o.suites.iter().any(|s| s == suite)).map(|o| o.version.clone()).max()
        }
    }
    .with_context(|| {
        format!(
            "kernel {k}: the package mirror offers no {meta} ({})",
            match &row.current {
                Current::Candidate => "no candidate".to_string(),
                Current::FromSuite(s) => format!("none in {s}"),
            }
        )
    })?;
    let shown = apt.show(meta)?;
    let meta_rec = record(&shown, meta, &meta_version)
        .with_context(|| format!("kernel {k}: apt-cache show has no {meta} {meta_version}"))?;
    let image_rel = dependency(meta_rec, |p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .with_context(|| format!("kernel {k}: {meta} {meta_version} depends on no linux-image-*-amd64"))?;
    let abi = image_rel.package["linux-image-".len()..image_rel.package.len() - "-amd64".len()].to_string();
    let needed_by_meta = format!("{meta} {meta_version}");

    let image_version = choose(
        apt,
        k,
        &Want {
            package: image_rel.package.clone(),
            needed_by: needed_by_meta,
            relation: Some(&image_rel),
            upstream: None,
        },
    )?;
    let upstream = image_version.upstream().to_string();
    let image_id = format!("{} {image_version}", image_rel.package);
    let shown = apt.show(&image_rel.package)?;
    let image_rec = record(&shown, &image_rel.package, &image_version)
        .with_context(|| format!("kernel {k}: apt-cache show has no {image_id}"))?;
    let split: Vec<Relation> = ["linux-binary-", "linux-modules-"]
        .iter()
        .filter_map(|prefix| dependency(image_rec, |p| p.starts_with(prefix)))
        .collect();
    let boot = if split.is_empty() {
        vec![(image_rel.package.clone(), image_version.to_string())]
    } else {
        let mut boot = Vec::new();
        for rel in &split {
            let v = choose(
                apt,
                k,
                &Want {
                    package: rel.package.clone(),
                    needed_by: image_id.clone(),
                    relation: Some(rel),
                    upstream: Some(&upstream),
                },
            )?;
            boot.push((rel.package.clone(), v.to_string()));
        }
        boot
    };

    let headers = format!("linux-headers-{abi}-amd64");
    let headers_version = choose(
        apt,
        k,
        &Want { package: headers.clone(), needed_by: image_id.clone(), relation: None, upstream: Some(&upstream) },
    )?;
    let shown = apt.show(&headers)?;
    let headers_rec = record(&shown, &headers, &headers_version)
        .with_context(|| format!("kernel {k}: apt-cache show has no {headers} {headers_version}"))?;
    let headers_id = format!("{headers} {headers_version}");
    let mut headers_pkgs = vec![(headers.clone(), headers_version.to_string())];
    for (what, pred) in [
        (
            "linux-headers-*-common",
            (|p: &str| p.starts_with("linux-headers-") && p.ends_with("-common")) as fn(&str) -> bool,
        ),
        ("linux-kbuild-*", |p: &str| p.starts_with("linux-kbuild-")),
    ] {
        let rel =
            dependency(headers_rec, pred).with_context(|| format!("kernel {k}: {headers_id} depends on no {what}"))?;
        let v = choose(
            apt,
            k,
            &Want {
                package: rel.package.clone(),
                needed_by: headers_id.clone(),
                relation: Some(&rel),
                upstream: Some(&upstream),
            },
        )?;
        headers_pkgs.push((rel.package.clone(), v.to_string()));
    }
    Ok(KernelPackages { abi, version: image_version.to_string(), boot, headers: headers_pkgs })
}

/// `row` as the test bed needs it: Debian's image and headers, or for a row it builds itself,
/// the source package of the current image's upstream version (installed in the build root,
/// nothing to boot). A built kernel's `abi` names the change, so its files never mix with the
/// image's.
pub(super) fn resolve_row(apt: &dyn AptTexts, row: &KernelRow) -> Result<KernelPackages> {
    let image = resolve(apt, row)?;
    let Some(build) = row.build else { return Ok(image) };
    let image_version = DebVersion::new(&image.version);
    let source = choose(
        apt,
        row.name,
        &Want {
            package: build.source_package.to_string(),
            needed_by: format!("the {} kernel build (image {})", row.name, image.version),
            relation: None,
            upstream: Some(image_version.upstream()),
        },
    )?;
    Ok(KernelPackages {
        abi: format!("{}+{}", image.abi, build.change.id()),
        version: source.to_string(),
        boot: Vec::new(),
        headers: vec![(build.source_package.to_string(), source.to_string())],
    })
}

/// The name of the source package of an upstream kernel version: `linux-source-6.12` for
/// 6.12.95, `linux-source-7.3` for 7.3~rc7 (Debian names it after major.minor).
pub(super) fn source_package_name(upstream: &str) -> Option<String> {
    let mut parts = upstream.split(['.', '~', '-']);
    let (major, minor) = (parts.next()?, parts.next()?);
    let number = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    (number(major) && number(minor)).then(|| format!("linux-source-{major}.{minor}"))
}

/// The source package of an image resolved as `image`, at the image's upstream version (the
/// kernel's own test code is built from it; `hmm.rs`).
pub(super) fn resolve_source(apt: &dyn AptTexts, row: &KernelRow, image: &KernelPackages) -> Result<(String, String)> {
    let image_version = DebVersion::new(&image.version);
    let upstream = image_version.upstream();
    let package = source_package_name(upstream)
        .with_context(|| format!("kernel {}: no source package name for upstream version {upstream}", row.name))?;
    let version = choose(
        apt,
        row.name,
        &Want {
            package: package.clone(),
            needed_by: format!("the {} kernel's HMM test build (image {})", row.name, image.version),
            relation: None,
            upstream: Some(upstream),
        },
    )?;
    Ok((package, version.to_string()))
}

/// Recorded apt-cache texts: a `=== policy` section (`apt-cache policy` of every package) and a
/// `=== show` section (`apt-cache show` of every package); `#` lines before them are comments.
#[cfg(test)]
pub(super) struct Recorded {
    policy: String,
    show: String,
}

#[cfg(test)]
impl Recorded {
    pub(super) fn parse(text: &str) -> Self {
        let body = |name: &str| {
            text.split_once(&format!("=== {name}\n"))
                .map(|(_, rest)| rest.split("\n=== ").next().unwrap_or("").to_string())
                .unwrap_or_default()
        };
        Recorded { policy: body("policy"), show: body("show") }
    }
}

#[cfg(test)]
impl AptTexts for Recorded {
    fn policy(&self, package: &str) -> Result<String> {
        // Hand back only that package's block, as apt-cache would.
        let mut out = String::new();
        let mut keep = false;
        for line in self.policy.lines() {
            if !line.starts_with(' ') {
                keep = line.trim_end().strip_suffix(':') == Some(package);
            }
            if keep {
                out.push_str(line);
                out.push('\n');
            }
        }
        Ok(out)
    }

    fn show(&self, package: &str) -> Result<String> {
        Ok(self
            .show
            .split("\n\n")
            .filter(|s| field(s, "Package").as_deref() == Some(package))
            .collect::<Vec<_>>()
            .join("\n\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::kernels::by_name;

    const SKEW_6_1: &str = include_str!("../../fixtures/apt/bookworm-6.1-kbuild-skew.txt");
    const BACKPORTS_6_12: &str = include_str!("../../fixtures/apt/bookworm-backports-6.12.txt");
    const KBUILD_MISSING: &str = include_str!("../../fixtures/apt/bookworm-6.1-kbuild-missing.txt");
    const BULLSEYE_5_10: &str = include_str!("../../fixtures/apt/bullseye-5.10.txt");
    const SID_SPLIT: &str = include_str!("../../fixtures/apt/sid-7.2-and-7.3-rc-split.txt");

    fn resolve_text(text: &str, kernel: &str) -> Result<KernelPackages> {
        resolve(&Recorded::parse(text), by_name(kernel).expect("a kernel row"))
    }

    fn pkgs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    /// What each recorded archive resolves to: (why, fixture, kernel, ABI, boot, headers).
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [(&'static str, &'static str)],
    );
    const CASES: &[Case] = &[
        (
            "kbuild by its own candidate (6.1.192-3), not the image's revision",
            SKEW_6_1,
            "6.1",
            "6.1.0-56",
            &[("linux-image-6.1.0-56-amd64", "6.1.192-2")],
            &[
                ("linux-headers-6.1.0-56-amd64", "6.1.192-2"),
                ("linux-headers-6.1.0-56-common", "6.1.192-2"),
                ("linux-kbuild-6.1", "6.1.192-3"),
            ],
        ),
        (
            "a backports kernel comes from its suite, not the archive's candidate",
            BACKPORTS_6_12,
            "6.12",
            "6.12.95+deb12",
            &[("linux-image-6.12.95+deb12-amd64", "6.12.95-1~bpo12+1")],
            &[
                ("linux-headers-6.12.95+deb12-amd64", "6.12.95-1~bpo12+1"),
                ("linux-headers-6.12.95+deb12-common", "6.12.95-1~bpo12+1"),
                ("linux-kbuild-6.12.95+deb12", "6.12.95-1~bpo12+1"),
            ],
        ),
        (
            "5.10 LTS comes from bullseye-security",
            BULLSEYE_5_10,
            "5.10",
            "5.10.0-46",
            &[("linux-image-5.10.0-46-amd64", "5.10.262-1")],
            &[
                ("linux-headers-5.10.0-46-amd64", "5.10.262-1"),
                ("linux-headers-5.10.0-46-common", "5.10.262-1"),
                ("linux-kbuild-5.10", "5.10.262-1"),
            ],
        ),
        (
            "a split 7.x image boots from its binary and modules packages; kbuild is unversioned",
            SID_SPLIT,
            "7.2",
            "7.2.13+deb14",
            &[("linux-binary-7.2.13+deb14-amd64", "7.2.13-1"), ("linux-modules-7.2.13+deb14-amd64", "7.2.13-1")],
            &[
                ("linux-headers-7.2.13+deb14-amd64", "7.2.13-1"),
                ("linux-headers-7.2.13+deb14-common", "7.2.13-1"),
                ("linux-kbuild-7.2.13+deb14", "7.2.13-1"),
            ],
        ),
        (
            "the release candidate: experimental is never apt's candidate, the row names its suite",
            SID_SPLIT,
            "7.3-rc",
            "7.3",
            &[("linux-binary-7.3-amd64", "7.3~rc7-1~exp1"), ("linux-modules-7.3-amd64", "7.3~rc7-1~exp1")],
            &[
                ("linux-headers-7.3-amd64", "7.3~rc7-1~exp1"),
                ("linux-headers-7.3-common", "7.3~rc7-1~exp1"),
                ("linux-kbuild-7.3", "7.3~rc7-1~exp1"),
            ],
        ),
    ];

    #[test]
    fn a_built_kernel_resolves_to_the_source_of_the_current_image() {
        let r = resolve_row(&Recorded::parse(BULLSEYE_5_10), by_name("5.10-prefix").expect("row")).unwrap();
        assert_eq!(r.abi, "5.10.0-46+revert-c2655835fd8c");
        assert!(r.boot.is_empty(), "nothing to download for a kernel built here: {:?}", r.boot);
        assert_eq!(r.headers, pkgs(&[("linux-source-5.10", "5.10.262-1")]));
        // A source of another upstream version than the image is refused, in one line.
        let skewed = BULLSEYE_5_10.replace("  Candidate: 5.10.262-1\n  Version table:\n     5.10.262-1 500\n        500 http://mirror.example/debian-security bullseye-security/main amd64 Packages\n     5.10.259-1", "  Candidate: 5.10.259-1\n  Version table:\n     5.10.259-1");
        assert_ne!(skewed, BULLSEYE_5_10);
        let err = resolve_row(&Recorded::parse(&skewed), by_name("5.10-prefix").expect("row")).unwrap_err().to_string();
        assert!(err.contains("linux-source-5.10") && err.contains("5.10.262") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn recorded_archives_resolve_as_apt_would() {
        for (why, text, kernel, abi, boot, headers) in CASES {
            let r = resolve_text(text, kernel).unwrap_or_else(|e| panic!("{why}: {e}"));
            assert_eq!(r.abi, *abi, "{why}");
            assert_eq!(r.version, boot[0].1, "{why}: the image's version");
            assert_eq!(r.boot, pkgs(boot), "{why}");
            assert_eq!(r.headers, pkgs(headers), "{why}");
        }
    }

    #[test]
    fn a_missing_package_is_one_line_naming_what_and_what_is_offered() {
        let e = resolve_text(KBUILD_MISSING, "6.1").unwrap_err().to_string();
        assert_eq!(
            e,
            "kernel 6.1: linux-kbuild-6.1 (>= 6.1.192-2) (needed by linux-headers-6.1.0-56-amd64 \
             6.1.192-2) cannot be satisfied: the package mirror offers 6.1.176-1"
        );
    }

    #[test]
    fn a_kbuild_of_another_upstream_version_is_refused() {
        // kbuild 6.1.193-1 satisfies `>= 6.1.192-2` but belongs to another kernel release.
        let text = SKEW_6_1.replace("6.1.192-3", "6.1.193-1");
        let e = resolve_text(&text, "6.1").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.contains("disagree on the upstream version")
                && e.contains("linux-kbuild-6.1 (>= 6.1.192-2)")
                && e.contains("6.1.193-1")
                && e.contains("6.1.192"),
            "{e}"
        );
    }

    #[test]
    fn policy_blocks_and_origins_are_read() {
        let p = parse_policy(&Recorded::parse(SKEW_6_1).policy, "linux-image-amd64");
        assert_eq!(p.candidate.unwrap().as_str(), "6.1.192-2");
        let suites: Vec<(String, Vec<String>)> =
            p.offers.iter().map(|o| (o.version.to_string(), o.suites.clone())).collect();
        assert_eq!(
            suites,
            vec![
                ("6.12.95-1~bpo12+1".to_string(), vec!["bookworm-backports".to_string()]),
                ("6.1.192-2".to_string(), vec!["bookworm-security".to_string()]),
                ("6.1.176-1".to_string(), vec!["bookworm".to_string()]),
            ]
        );
    }
    #[test]
    fn source_package_names_follow_major_minor() {
        assert_eq!(source_package_name("6.12.95").as_deref(), Some("linux-source-6.12"));
        assert_eq!(source_package_name("7.3~rc7").as_deref(), Some("linux-source-7.3"));
        assert_eq!(source_package_name("5.10.262").as_deref(), Some("linux-source-5.10"));
        assert_eq!(source_package_name("seven"), None);
    }
}
