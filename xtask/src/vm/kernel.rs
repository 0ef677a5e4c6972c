//! The bootable kernel: the uncompressed ELF `vmlinux` taken out of the Debian image's bzImage
//! (its payload is XZ on 6.1 and ZSTD on 6.12), so QEMU can boot it through its PVH entry.
use super::cmd;
use super::debian::Resolved;
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Returns the cached `vmlinux` of `r`, extracting it on first use.
pub fn vmlinux(paths: &Paths, r: &Resolved) -> Result<PathBuf> {
    let dir = paths.kernel(&r.abi);
    let out = dir.join("vmlinux");
    if out.is_file() {
        return Ok(out);
    }
    cmd::mkdir(&dir)?;
    let deb = r.deb(paths, "linux-image-*")?;
    println!("[{}] extracting vmlinux from {}", r.name(), file_name(&deb));
    let boot = dir.join("boot.tmp");
    let _ = std::fs::remove_dir_all(&boot);
    cmd::mkdir(&boot)?;
    extract_boot(&deb, &boot)?;
    let bz = find_prefixed(&boot.join("boot"), "vmlinuz-")?;
    let image = std::fs::read(&bz).with_context(|| format!("cannot read {}", bz.display()))?;
    let elf = decompress_payload(&image)
        .with_context(|| format!("cannot unpack the kernel in {}", bz.display()))?;
    let tmp = dir.join("vmlinux.tmp");
    std::fs::write(&tmp, elf).with_context(|| format!("cannot write {}", tmp.display()))?;
    // Keep the config next to vmlinux: handy when a test needs to know how the kernel was built.
    if let Ok(cfg) = find_prefixed(&boot.join("boot"), "config-") {
        let _ = std::fs::copy(cfg, dir.join("config"));
    }
    std::fs::rename(&tmp, &out).with_context(|| format!("cannot create {}", out.display()))?;
    let _ = std::fs::remove_dir_all(&boot);
    Ok(out)
}

/// `dpkg-deb --fsys-tarfile DEB | tar -x ./boot` (the image's modules are not needed).
fn extract_boot(deb: &Path, dest: &Path) -> Result<()> {
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run dpkg-deb")?;
    let pipe = dpkg.stdout.take().context("dpkg-deb has no stdout")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dest)
        .args(["--wildcards", "./boot/*"])
        .stdin(pipe)
        .status()
        .context("cannot run tar");
    let st = dpkg.wait().context("dpkg-deb did not finish")?;
    let tar = tar?;
    if !tar.success() {
        bail!(
            "tar could not extract ./boot from {} ({tar})",
            deb.display()
        );
    }
    if !st.success() {
        bail!("dpkg-deb --fsys-tarfile {} failed ({st})", deb.display());
    }
    Ok(())
}

/// The payload of an x86 bzImage, decompressed.
///
/// The setup header says where it is: `setup_sects` at 0x1f1 (0 means 4), `payload_offset` and
/// `payload_length` at 0x248/0x24c, relative to the protected-mode code that starts after
/// `(setup_sects + 1) * 512` bytes. The payload ends with the uncompressed size (4 bytes, LE).
pub fn decompress_payload(image: &[u8]) -> Result<Vec<u8>> {
    let u32_at = |off: usize| -> Result<u32> {
        let b = image
            .get(off..off + 4)
            .context("the image is too short for a bzImage setup header")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if image.get(0x202..0x206) != Some(b"HdrS") {
        bail!("not a bzImage (no HdrS signature)");
    }
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let start = (setup_sects + 1) * 512 + u32_at(0x248)? as usize;
    let len = u32_at(0x24c)? as usize;
    let payload = image
        .get(start..start + len)
        .with_context(|| format!("payload {start:#x}+{len:#x} lies outside the image"))?;
    if payload.len() < 8 {
        bail!("payload too short");
    }
    let (data, size) = payload.split_at(payload.len() - 4);
    let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
    let (tool, args): (&str, &[&str]) = if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        ("xz", &["-dc", "--single-stream"])
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ("zstd", &["-dcq"])
    } else {
        bail!(
            "payload compression not handled (magic {:02x?}); only XZ and ZSTD are",
            &data[..6.min(data.len())]
        );
    };
    let out = run_filter(tool, args, data)?;
    if !out.starts_with(b"\x7fELF") {
        bail!("{tool} output is not an ELF file");
    }
    if out.len() != size {
        bail!("{tool} produced {} bytes, the image says {size}", out.len());
    }
    Ok(out)
}

fn run_filter(tool: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>> {
    cmd::require_tool(tool, if tool == "xz" { "xz-utils" } else { "zstd" })?;
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {tool}"))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child
        .wait_with_output()
        .with_context(|| format!("{tool} did not finish"))?;
    let _ = writer.join();
    if !out.status.success() {
        bail!(
            "{tool} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn find_prefixed(dir: &Path, prefix: &str) -> Result<PathBuf> {
    std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .with_context(|| format!("no {prefix}* in {}", dir.display()))
}

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_a_bzimage() {
        assert!(decompress_payload(&[0u8; 4096]).is_err());
        let mut img = vec![0u8; 4096];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x1f1] = 1;
        img[0x248..0x24c].copy_from_slice(&0x10u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&0x1000u32.to_le_bytes()); // past the end
        assert!(decompress_payload(&img).is_err());
    }
}
