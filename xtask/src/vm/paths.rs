//! Where the test bed keeps things: everything lives under `<workspace>/target/vm-cache/`.
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Paths {
    /// The workspace root (the parent of xtask's manifest directory).
    pub root: PathBuf,
    /// `target/vm-cache`.
    pub cache: PathBuf,
}

impl Paths {
    pub fn new() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let cache = root.join("target").join("vm-cache");
        Paths { root, cache }
    }

    /// Private apt configuration and state.
    pub fn apt(&self) -> PathBuf {
        self.cache.join("apt")
    }
    /// Downloaded .deb files.
    pub fn debs(&self) -> PathBuf {
        self.cache.join("debs")
    }
    /// Resolution records, one per kernel name.
    pub fn resolved(&self, name: &str) -> PathBuf {
        self.cache.join("resolved").join(format!("{name}.txt"))
    }
    /// Extracted kernel and headers of one ABI.
    pub fn kernel(&self, abi: &str) -> PathBuf {
        self.cache.join("kernels").join(abi)
    }
    /// Per-kernel build outputs (module, initramfs).
    pub fn build(&self, abi: &str) -> PathBuf {
        self.cache.join("build").join(abi)
    }
    /// Guest programs (statically linked; shared by all kernels).
    pub fn guest_build(&self) -> PathBuf {
        self.cache.join("build").join("guest")
    }
    pub fn logs(&self) -> PathBuf {
        self.cache.join("logs")
    }
    pub fn kmod_src(&self) -> PathBuf {
        self.root.join("tests").join("kmod")
    }
    pub fn guest_src(&self) -> PathBuf {
        self.root.join("tests").join("guest")
    }
}

impl Default for Paths {
    fn default() -> Self {
        Self::new()
    }
}
