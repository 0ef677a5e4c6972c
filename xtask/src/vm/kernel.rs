//! The bootable kernel: the uncompressed ELF `vmlinux` taken out of the Debian image's bzImage
//! (its payload is XZ on 5.10 and 6.1, ZSTD from 6.12), so QEMU can boot it through its PVH
//! entry. The bzImage is `/boot/vmlinuz-<abi>` in a classic image package and
//! `/usr/lib/modules/<abi>/vmlinuz` in 7.x's `linux-binary-*`; the package is listed, not guessed.
use super::cmd;
use super::debian::Resolved;
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Returns the cached `vmlinux` of `r`, extracting it on first use.
pub(super) fn vmlinux(paths: &Paths, r: &Resolved) -> Result<PathBuf> {
    let dir = paths.kernel(&r.abi);
    let out = dir.join("vmlinux");
    if out.is_file() {
        return Ok(out);
    }
    cmd::mkdir(&dir)?;
    let (package, _) = r.boot.first().context("a kernel without boot packages")?;
    let deb = r.deb(paths, package)?;
    let listing = cmd::output(Command::new("dpkg-deb").arg("-c").arg(&deb))?;
    let member = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.starts_with("./boot/vmlinuz-") || (p.starts_with("./usr/lib/modules/") && p.ends_with("/vmlinuz")))
        .map(str::to_string)
        .with_context(|| format!("{} holds no vmlinuz", deb.display()))?;
    println!("[{}] extracting vmlinux from {} ({member})", r.name(), file_name(&deb));
    let image = read_member(&deb, &member)?;
    let elf = decompress_payload(&image)
        .with_context(|| format!("cannot unpack the kernel {member} of {}", deb.display()))?;
    let tmp = dir.join("vmlinux.tmp");
    std::fs::write(&tmp, elf).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("cannot create {}", out.display()))?;
    Ok(out)
}

/// `dpkg-deb --fsys-tarfile DEB | tar -xO MEMBER`.
fn read_member(deb: &Path, member: &str) -> Result<Vec<u8>> {
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run dpkg-deb")?;
    let pipe = dpkg.stdout.take().context("dpkg-deb has no stdout")?;
    let tar = Command::new("tar").args(["-xO", member]).stdin(pipe).output().context("cannot run tar");
    let st = dpkg.wait().context("dpkg-deb did not finish")?;
    let tar = tar?;
    if !tar.status.success() {
        bail!("tar could not extract {member} from {} ({})", deb.display(), tar.status);
    }
    if !st.success() {
        bail!("dpkg-deb --fsys-tarfile {} failed ({st})", deb.display());
    }
    Ok(tar.stdout)
}

/// The payload of an x86 bzImage, decompressed.
///
/// The setup header says where it is: `setup_sects` at 0x1f1 (0 means 4), `payload_offset` and
/// `payload_length` at 0x248/0x24c, relative to the protected-mode code that starts after
/// `(setup_sects + 1) * 512` bytes. The payload ends with the uncompressed size (4 bytes, LE).
pub(super) fn decompress_payload(image: &[u8]) -> Result<Vec<u8>> {
    let u32_at = |off: usize| -> Result<u32> {
        let b = image.get(off..off + 4).context("the image is too short for a bzImage setup header")?;
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
    let payload =
        image.get(start..start + len).with_context(|| format!("payload {start:#x}+{len:#x} lies outside the image"))?;
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
        bail!("payload compression not handled (magic {:02x?}); only XZ and ZSTD are", &data[..6.min(data.len())]);
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
    let out = child.wait_with_output().with_context(|| format!("{tool} did not finish"))?;
    let _ = writer.join();
    if !out.status.success() {
        bail!("{tool} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

pub(super) fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
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
