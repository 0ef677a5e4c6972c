//! A private apt configuration per archive (a kernel row's set of suites, on the mirrors this
//! host's apt already uses): its own sources list, lists, cache and preferences, so the host's
//! apt state is never touched.
use super::cmd;
use super::kernels::Archive;
use super::resolve::AptTexts;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

pub(super) struct Apt {
    dir: PathBuf,
}

/// Mirrors taken from the host's apt sources (or the environment).
#[derive(Debug)]
struct Mirrors {
    main: String,
    security: Option<String>,
    signed_by: Option<String>,
}

impl Apt {
    /// Writes the private configuration of `archive` (cheap; done every run).
    pub(super) fn new(dir: &Path, archive: &Archive) -> Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"] {
            cmd::mkdir(&dir.join(sub))?;
        }
        let m = host_mirrors()?;
        let opts = m.signed_by.as_deref().map(|k| format!("[signed-by={k}] ")).unwrap_or_default();
        let mut list = String::from("# Written by `cargo xtask vm`; the host's apt configuration is not used.\n");
        for suite in archive.suites {
            list.push_str(&format!("deb {opts}{} {suite} main\n", m.main));
        }
        if !archive.security_suites.is_empty() {
            let sec = m.security.as_deref().with_context(|| {
                format!(
                    "the {} archive needs a security mirror: none in the host's apt sources; set MMNOTIF_APT_SECURITY",
                    archive.name
                )
            })?;
            for suite in archive.security_suites {
                list.push_str(&format!("deb {opts}{sec} {suite} main\n"));
            }
        }
        let path = dir.join("sources.list");
        std::fs::write(&path, list).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Apt { dir: dir.to_path_buf() })
    }

    fn command(&self, tool: &str) -> Command {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let mut c = Command::new(tool);
        for (k, v) in [
            ("Dir::Etc::SourceList", d("sources.list")),
            ("Dir::Etc::SourceParts", d("sources.list.d")),
            ("Dir::Etc::Preferences", d("preferences")),
            ("Dir::Etc::PreferencesParts", d("preferences.d")),
            ("Dir::State::Lists", d("lists")),
            ("Dir::Cache", d("cache")),
            // Hosts that clean apt caches (container images) set these to "": every apt-cache
            // call would then parse all lists again (~1.5 s each).
            ("Dir::Cache::pkgcache", "pkgcache.bin".into()),
            ("Dir::Cache::srcpkgcache", "srcpkgcache.bin".into()),
            // The mirror may be a snapshot whose Release files are past their Valid-Until (sid's
            // was, by 22 days, on 2026-11-28). Signatures are still checked.
            ("Acquire::Check-Valid-Until", "false".into()),
            ("Acquire::Languages", "none".into()),
            ("APT::Sandbox::User", "root".into()),
        ] {
            c.arg("-o").arg(format!("{k}={v}"));
        }
        c
    }

    pub(super) fn update(&self) -> Result<()> {
        let mut c = self.command("apt-get");
        // Without --error-on=any, an unreachable mirror is only a warning and apt keeps going on
        // whatever lists it has (or none).
        c.args(["-qq", "--error-on=any", "update"]);
        cmd::output(&mut c).context("apt-get update with the private sources list failed")?;
        Ok(())
    }

    /// Downloads `name=version` specs into `dest`.
    pub(super) fn download(&self, specs: &[String], dest: &Path) -> Result<()> {
        let mut c = self.command("apt-get");
        c.args(["-qq", "download"]).args(specs).current_dir(dest);
        cmd::output(&mut c).map(|_| ())
    }

    /// `apt-cache ARGS`; empty output when apt knows no such package.
    fn cache_query(&self, args: &[&str]) -> Result<String> {
        let mut c = self.command("apt-cache");
        c.args(args);
        let out = c.output().with_context(|| format!("cannot run apt-cache {}", args.join(" ")))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(if out.status.success() { text } else { String::new() })
    }
}

impl AptTexts for Apt {
    fn policy(&self, package: &str) -> Result<String> {
        self.cache_query(&["policy", package])
    }

    fn show(&self, package: &str) -> Result<String> {
        self.cache_query(&["show", package])
    }
}

/// The Debian mirror (non-security suites) the host's apt uses, or MMNOTIF_APT_MIRROR.
pub(crate) fn debian_mirror() -> Result<String> {
    Ok(host_mirrors()?.main)
}

/// The host's Debian mirrors: the URI of a non-security suite and of a `-security` suite, from
/// /etc/apt/sources.list{,.d/*.list,.d/*.sources}; MMNOTIF_APT_MIRROR / MMNOTIF_APT_SECURITY
/// override them.
fn host_mirrors() -> Result<Mirrors> {
    let mut entries: Vec<(String, Vec<String>, Option<String>)> = Vec::new();
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        match f.extension().and_then(|e| e.to_str()) {
            Some("sources") => entries.extend(parse_deb822(&text)),
            Some("list") => entries.extend(parse_one_line(&text)),
            _ => {}
        }
    }
    let debian = |uri: &str| uri.contains("debian");
    let main_entry = entries.iter().find(|(u, s, _)| debian(u) && s.iter().any(|s| !s.ends_with("-security")));
    let sec_entry = entries.iter().find(|(u, s, _)| debian(u) && s.iter().any(|s| s.ends_with("-security")));
    let main = std::env::var("MMNOTIF_APT_MIRROR").ok().or_else(|| main_entry.map(|e| e.0.clone()));
    let Some(main) = main else {
        bail!("no Debian mirror in /etc/apt/sources.list{{,.d}}; set MMNOTIF_APT_MIRROR to one")
    };
    let security = std::env::var("MMNOTIF_APT_SECURITY").ok().or_else(|| sec_entry.map(|e| e.0.clone()));
    let signed_by = main_entry.and_then(|e| e.2.clone()).filter(|k| Path::new(k).is_file()).or_else(|| {
        let k = "/usr/share/keyrings/debian-archive-keyring.gpg";
        Path::new(k).is_file().then(|| k.to_string())
    });
    Ok(Mirrors { main, security, signed_by })
}

type Entry = (String, Vec<String>, Option<String>);

fn parse_deb822(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let get = |k: &str| {
            stanza.lines().find_map(|l| {
                let (key, v) = l.split_once(':')?;
                key.trim().eq_ignore_ascii_case(k).then(|| v.trim().to_string())
            })
        };
        let enabled = get("Enabled").is_none_or(|v| v != "no");
        let is_deb = get("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        if !enabled || !is_deb {
            continue;
        }
        let suites: Vec<String> = get("Suites").unwrap_or_default().split_whitespace().map(String::from).collect();
        for uri in get("URIs").unwrap_or_default().split_whitespace() {
            out.push((uri.trim_end_matches('/').to_string(), suites.clone(), get("Signed-By")));
        }
    }
    out
}

fn parse_one_line(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut rest = rest.trim();
        let mut signed = None;
        if let Some(r) = rest.strip_prefix('[') {
            let Some((opts, after)) = r.split_once(']') else {
                continue;
            };
            signed = opts.split_whitespace().find_map(|o| o.strip_prefix("signed-by=").map(String::from));
            rest = after.trim();
        }
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            out.push((uri.trim_end_matches('/').to_string(), vec![suite.to_string()], signed));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_deb822_and_one_line_sources() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\nSigned-By: /k.gpg\n\nTypes: deb-src\nURIs: http://src.example\n\
                      Suites: bookworm\n\nTypes: deb\nEnabled: no\nURIs: http://off.example\nSuites: x\n";
        let e = parse_deb822(deb822);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "http://mirror.example/debian");
        assert_eq!(e[0].1, vec!["bookworm", "bookworm-updates"]);
        assert_eq!(e[0].2.as_deref(), Some("/k.gpg"));

        let one = "# c\ndeb [arch=amd64 signed-by=/s.gpg] http://sec.example/debian-security/ bookworm-security main\n\
                   deb-src http://x bookworm main\n";
        let e = parse_one_line(one);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "http://sec.example/debian-security");
        assert_eq!(e[0].1, vec!["bookworm-security"]);
        assert_eq!(e[0].2.as_deref(), Some("/s.gpg"));
    }
}
