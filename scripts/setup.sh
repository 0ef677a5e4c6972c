#!/usr/bin/env bash
# Installs everything mmnotif-trace needs to build and test on a fresh Debian machine.
# Idempotent: each step checks first and prints only what it actually installs.
set -euo pipefail

STATE_DIR="${MMNOTIF_STATE_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/mmnotif-trace}"
BPF_LINKER_VERSION=0.13.0
CARGO_DEB_VERSION=3.8.0
NIGHTLY=nightly

say() { printf 'setup: %s\n' "$*"; }
# Pipelines into grep let grep read to the end (no -q): with pipefail, `grep -q` quitting at
# the first match can kill the writer with SIGPIPE and fail a check that matched.

# --- Debian packages -------------------------------------------------------
# Each entry: "<command or file that proves it is there>:<package>"
APT_NEEDS=(
  "tmux:tmux"
  "qemu-system-x86_64:qemu-system-x86"
  "/bin/busybox:busybox-static"
  "cpio:cpio"
  "zstd:zstd"
  "xz:xz-utils"
  "gcc-12:gcc-12"
  "gcc:gcc"
  "make:make"
  "/usr/lib/x86_64-linux-gnu/libc.a:libc6-dev"
  "/usr/lib/x86_64-linux-gnu/libdw.so.1:libdw1"
  "/usr/lib/x86_64-linux-gnu/libbpf.so.1:libbpf1"
  "promtool:prometheus"
  "prometheus:prometheus"
  "xmllint:libxml2-utils"
  "mmdebstrap:mmdebstrap"
  "systemd-nspawn:systemd-container"
  "unshare:util-linux"
  "file:file"
  # The shells the completion test loads the generated scripts into (bash is there already).
  "zsh:zsh"
  "fish:fish"
)
missing=()
for need in "${APT_NEEDS[@]}"; do
  probe=${need%%:*}; pkg=${need##*:}
  if [[ $probe == /* ]]; then [[ -e $probe ]] && continue; else command -v "$probe" >/dev/null 2>&1 && continue; fi
  missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- the default toolchain's style gate (cargo xtask test runs cargo fmt --check and clippy) ------
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep "^$component" >/dev/null; then
    say "adding $component to the default toolchain"
    rustup component add "$component"
  fi
done

# --- nightly toolchain + rust-src (the eBPF crate is built with -Z build-std=core) ----
if ! rustup toolchain list | grep "^$NIGHTLY" >/dev/null; then
  say "installing the $NIGHTLY toolchain"
  rustup toolchain install "$NIGHTLY" --profile minimal
fi
for component in rust-src clippy; do
  # clippy: cargo xtask test lints probe-ebpf with the toolchain that builds it.
  if ! rustup component list --toolchain "$NIGHTLY" --installed | grep "^$component" >/dev/null; then
    say "adding $component to $NIGHTLY"
    rustup component add "$component" --toolchain "$NIGHTLY"
  fi
done

# --- bpf-linker, linked against the nightly toolchain's own LLVM --------------------
sysroot=$(rustc +"$NIGHTLY" --print sysroot)
llvm_so=$(cd "$sysroot/lib" && ls libLLVM.so.* 2>/dev/null | head -n1 || true)
[[ -n $llvm_so ]] || { echo "setup: no libLLVM.so.* in $sysroot/lib; cannot build bpf-linker" >&2; exit 1; }
llvm_major=$(sed -E 's/^libLLVM\.so\.([0-9]+).*/\1/' <<<"$llvm_so")
prefix="$STATE_DIR/llvm-$llvm_so"
# The binary's rpath points at $prefix/lib, so this directory must outlive the build.
mkdir -p "$prefix/lib"
for link in libLLVM.so "$llvm_so"; do
  if [[ "$(readlink "$prefix/lib/$link" 2>/dev/null)" != "$sysroot/lib/$llvm_so" ]]; then
    ln -sfn "$sysroot/lib/$llvm_so" "$prefix/lib/$link"
  fi
done
linker_ok() {
  command -v bpf-linker >/dev/null 2>&1 &&
    bpf-linker --version 2>/dev/null | grep "$BPF_LINKER_VERSION" >/dev/null &&
    ldd "$(command -v bpf-linker)" 2>/dev/null | grep "$prefix/lib/$llvm_so" >/dev/null
}
export PATH="$HOME/.cargo/bin:$PATH"
if ! linker_ok; then
  say "building bpf-linker $BPF_LINKER_VERSION against $llvm_so (about a minute)"
  LLVM_PREFIX="$prefix" cargo +stable install --quiet --force bpf-linker --version "=$BPF_LINKER_VERSION" \
    --no-default-features --features "llvm-$llvm_major"
  linker_ok || { echo "setup: bpf-linker was built but does not run against $prefix/lib" >&2; exit 1; }
fi

# --- cargo-deb: `cargo xtask dist` packages the static binary with it ---------------------
if ! cargo deb --version 2>/dev/null | grep -F "$CARGO_DEB_VERSION" >/dev/null; then
  say "building cargo-deb $CARGO_DEB_VERSION (a few minutes)"
  cargo +stable install --quiet --locked --force cargo-deb --version "=$CARGO_DEB_VERSION"
  cargo deb --version 2>/dev/null | grep -F "$CARGO_DEB_VERSION" >/dev/null ||
    { echo "setup: cargo-deb was built but cargo deb --version does not say $CARGO_DEB_VERSION" >&2; exit 1; }
fi
