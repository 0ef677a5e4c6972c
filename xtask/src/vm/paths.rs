//! Where the test bed keeps things. What comes from the package mirror (apt lists, .deb files,
//! resolutions, extracted kernels and headers) lives in a store outside the checkout, so a fresh
//! clone on the same machine reuses it and a run without the mirror can fall back to it; what is
//! built from this checkout's sources (module, guest programs, initramfs, logs) lives under
//! `<workspace>/target/vm-cache/`.
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub(crate) struct Paths {
    /// The workspace root (the parent of xtask's manifest directory).
    pub root: PathBuf,
    /// `target/vm-cache`: this checkout's builds and logs.
    pub cache: PathBuf,
    /// The machine-wide store of downloaded and extracted kernels.
    pub store: PathBuf,
}

impl Paths {
    pub(crate) fn new() -> Self {
        let root =
            Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let cache = root.join("target").join("vm-cache");
        Paths { root, cache, store: state_dir().join("vm") }
    }

    /// Private apt configuration and state of one archive.
    pub(crate) fn apt(&self, archive: &str) -> PathBuf {
        self.store.join("apt").join(archive)
    }
    /// Downloaded .deb files.
    pub(crate) fn debs(&self) -> PathBuf {
        self.store.join("debs")
    }
    /// Resolution records, one per kernel name.
    pub(crate) fn resolved(&self, name: &str) -> PathBuf {
        self.store.join("resolved").join(format!("{name}.txt"))
    }
    /// Extracted kernels and headers, one directory per ABI.
    pub(crate) fn kernels(&self) -> PathBuf {
        self.store.join("kernels")
    }
    /// Extracted kernel and headers of one ABI.
    pub(crate) fn kernel(&self, abi: &str) -> PathBuf {
        self.kernels().join(abi)
    }
    /// Per-kernel build outputs (module, initramfs).
    pub(crate) fn build(&self, abi: &str) -> PathBuf {
        self.cache.join("build").join(abi)
    }
    /// Guest programs (statically linked; shared by all kernels).
    pub(crate) fn guest_build(&self) -> PathBuf {
        self.cache.join("build").join("guest")
    }
    pub(crate) fn logs(&self) -> PathBuf {
        self.cache.join("logs")
    }
    pub(crate) fn kmod_src(&self) -> PathBuf {
        self.root.join("tests").join("kmod")
    }
    pub(crate) fn guest_src(&self) -> PathBuf {
        self.root.join("tests").join("guest")
    }
}

impl Default for Paths {
    fn default() -> Self {
        Self::new()
    }
}

/// The project's machine-wide state directory; scripts/setup.sh computes the same one (it keeps
/// bpf-linker's LLVM links there): `$MMNOTIF_STATE_DIR`, else `$XDG_DATA_HOME/mmnotif-trace`,
/// else `~/.local/share/mmnotif-trace`.
pub(crate) fn state_dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("MMNOTIF_STATE_DIR")
        .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("mmnotif-trace")))
        .or_else(|| env("HOME").map(|h| h.join(".local/share/mmnotif-trace")))
        .unwrap_or_else(|| PathBuf::from("/var/tmp/mmnotif-trace"))
}
