//! KVM inside the guest: Debian builds it as modules (`kvm`, `kvm-amd` and what they depend
//! on). They are taken out of the kernel's own image package, so a guest scenario can create
//! VMs while the tracer runs (QEMU's TCG offers SVM to the guest with `-cpu max`).
use super::cmd;
use super::debian::Resolved;
use super::kernel::file_name;
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The module that gives a guest on QEMU's TCG CPU its /dev/kvm (SVM).
const ROOT_MODULE: &str = "kvm_amd";

/// Lists the cached modules in load order, one file name a line.
const ORDER_FILE: &str = "order";

/// `kvm_amd` and every module it needs, as uncompressed `.ko` files in load order
/// (dependencies first), extracted on first use from the package that holds the modules: the
/// image up to 6.x (`/lib/modules`), 7.x's `linux-modules-*` (`/usr/lib/modules`).
pub(super) fn modules(paths: &Paths, r: &Resolved) -> Result<Vec<PathBuf>> {
    let dir = paths.kernel(&r.abi).join("kvm-modules");
    if let Ok(order) = std::fs::read_to_string(dir.join(ORDER_FILE)) {
        return Ok(order.lines().map(|name| dir.join(name)).collect());
    }
    let (package, _) = r.boot.last().context("a kernel without boot packages")?;
    let deb = r.deb(paths, package)?;
    println!("[{}] extracting the kvm modules from {}", r.abi, file_name(&deb));
    let _ = std::fs::remove_dir_all(&dir);
    let tree = dir.join("image.tmp");
    cmd::mkdir(&tree)?;
    // The whole package: which directories the dependencies live in is only known afterwards.
    cmd::output(Command::new("dpkg").arg("-x").arg(&deb).arg(&tree))?;
    let modules_dir = ["usr/lib/modules", "lib/modules"]
        .iter()
        .map(|d| tree.join(d))
        .find(|d| d.is_dir())
        .with_context(|| format!("{} holds no lib/modules", file_name(&deb)))?;
    let index = index_modules(&modules_dir)?;
    let mut order = Vec::new();
    for name in load_order(ROOT_MODULE, |name| {
        let path = index.get(name).with_context(|| format!("module {name} is not in {}", file_name(&deb)))?;
        Ok(module_depends(&read_module(path)?))
    })? {
        let file = format!("{name}.ko");
        let path = index.get(&name).context("indexed above")?;
        std::fs::write(dir.join(&file), read_module(path)?)
            .with_context(|| format!("cannot write {}", dir.join(&file).display()))?;
        order.push(file);
    }
    let _ = std::fs::remove_dir_all(&tree);
    let list = dir.join(ORDER_FILE);
    std::fs::write(&list, order.join("\n") + "\n").with_context(|| format!("cannot write {}", list.display()))?;
    Ok(order.into_iter().map(|file| dir.join(file)).collect())
}

/// Module name (dashes as underscores, as the kernel names modules) → its file, for every
/// `.ko`, `.ko.xz`, `.ko.zst` and `.ko.gz` under `dir`.
fn index_modules(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut index = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let path = entry.with_context(|| format!("cannot list {}", d.display()))?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = file_name(&path);
            let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().find_map(|ext| name.strip_suffix(ext));
            if let Some(stem) = stem {
                index.insert(stem.replace('-', "_"), path);
            }
        }
    }
    Ok(index)
}

/// The module's bytes, decompressed (Debian compresses modules from 6.x on, with xz or zstd).
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = file_name(path);
    let tool = if name.ends_with(".xz") {
        Some(("xz", "xz-utils"))
    } else if name.ends_with(".zst") {
        Some(("zstd", "zstd"))
    } else if name.ends_with(".gz") {
        Some(("gzip", "gzip"))
    } else {
        None
    };
    match tool {
        None => std::fs::read(path).with_context(|| format!("cannot read {}", path.display())),
        Some((tool, package)) => {
            cmd::require_tool(tool, package)?;
            Ok(cmd::output(Command::new(tool).arg("-dc").arg(path))?.stdout)
        }
    }
}

/// The `depends=` entry of a module's `.modinfo` (NUL-separated `key=value` strings), split on
/// commas; module names as the kernel spells them.
fn module_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"depends=";
    let found = ko.windows(KEY.len()).enumerate().find(|(i, w)| *w == KEY && (*i == 0 || ko[*i - 1] == 0));
    let Some((at, _)) = found else {
        return Vec::new();
    };
    let value = &ko[at + KEY.len()..];
    let value = &value[..value.iter().position(|&b| b == 0).unwrap_or(value.len())];
    String::from_utf8_lossy(value).split(',').map(|d| d.trim().replace('-', "_")).filter(|d| !d.is_empty()).collect()
}

/// `root` and everything it depends on, dependencies before their users, each once.
fn load_order(root: &str, mut depends: impl FnMut(&str) -> Result<Vec<String>>) -> Result<Vec<String>> {
    fn visit(
        name: &str,
        depends: &mut dyn FnMut(&str) -> Result<Vec<String>>,
        path: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<()> {
        if out.iter().any(|n| n == name) {
            return Ok(());
        }
        if path.iter().any(|n| n == name) {
            bail!("modules depend on each other in a cycle: {} -> {name}", path.join(" -> "));
        }
        path.push(name.to_string());
        for dep in depends(name)? {
            visit(&dep, depends, path, out)?;
        }
        path.pop();
        out.push(name.to_string());
        Ok(())
    }
    let mut out = Vec::new();
    visit(root, &mut depends, &mut Vec::new(), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_is_read_from_modinfo_strings() {
        let ko = b"\x7fELF junk\0license=GPL\0depends=kvm,ccp\0retpoline=Y\0name=kvm_amd\0";
        assert_eq!(module_depends(ko), vec!["kvm", "ccp"]);
        assert_eq!(module_depends(b"\0depends=\0name=irqbypass\0"), Vec::<String>::new());
        assert_eq!(module_depends(b"no modinfo here"), Vec::<String>::new());
        // Only a whole key counts, not the end of another one.
        assert_eq!(module_depends(b"\0xdepends=a\0depends=b-c\0"), vec!["b_c"]);
    }

    #[test]
    fn dependencies_load_first_and_once() {
        let deps: BTreeMap<&str, Vec<String>> = [
            ("kvm_amd", vec!["kvm".to_string(), "ccp".to_string()]),
            ("kvm", vec!["irqbypass".to_string()]),
            ("ccp", vec!["irqbypass".to_string()]),
            ("irqbypass", vec![]),
        ]
        .into_iter()
        .collect();
        let order = load_order("kvm_amd", |n| deps.get(n).cloned().context("unknown")).unwrap();
        assert_eq!(order, vec!["irqbypass", "kvm", "ccp", "kvm_amd"]);
        let cycle = load_order("a", |n| Ok(vec![if n == "a" { "b" } else { "a" }.to_string()]));
        assert!(cycle.unwrap_err().to_string().contains("cycle"));
    }
}
