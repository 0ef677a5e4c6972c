//! Man pages and shell completions, generated from the clap definitions in [`crate::cli`], so
//! they always say what `--help` says.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
};

use clap::CommandFactory;
pub use clap_complete::Shell;
use thiserror::Error;

use crate::cli::Cli;

/// The binary's name, as installed (`/usr/sbin/mmnotif-trace`).
pub const BIN_NAME: &str = "mmnotif-trace";

/// Man section: a system administration tool (it needs root to trace).
pub const MAN_SECTION: &str = "8";

#[derive(Debug, Error)]
pub enum ManualError {
    #[error("creating {}", .0.display())]
    CreateDir(PathBuf, #[source] io::Error),
    #[error("writing {}", .0.display())]
    Write(PathBuf, #[source] io::Error),
    #[error("rendering the man page of {0}")]
    Render(String, #[source] io::Error),
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN_NAME, &mut out);
    if shell == Shell::Bash {
        out = repair_bash_states(&out);
    }
    out
}

/// clap_complete's bash script (4.6.11, clap-rs/clap#6421) names its states inconsistently
/// when the program name has a hyphen: the loop over the typed words reaches
/// `mmnotif__trace__subcmd__stream`, while the case arms that offer a subcommand's flags are
/// labelled `mmnotif__subcmd__trace__subcmd__stream`, so no flag of any subcommand was ever
/// completed. The arms are relabelled the way the loop spells them.
fn repair_bash_states(script: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(script);
    let arm = BIN_NAME.replace('-', "__subcmd__");
    let state = BIN_NAME.replace('-', "__");
    text.replace(&format!("{arm}__subcmd__"), &format!("{state}__subcmd__")).into_bytes()
}

/// One rendered man page.
pub struct ManPage {
    /// File name, e.g. `mmnotif-trace-check.8`.
    pub file_name: String,
    /// The command the page documents, e.g. `mmnotif-trace check`.
    pub command: String,
    pub roff: Vec<u8>,
}

/// The man pages: `mmnotif-trace(8)` and one `mmnotif-trace-SUBCOMMAND(8)` per subcommand.
pub fn man_pages() -> Result<Vec<ManPage>, ManualError> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut pages = Vec::new();
    render(&root, BIN_NAME.to_string(), &mut pages)?;
    Ok(pages)
}

fn render(cmd: &clap::Command, command: String, pages: &mut Vec<ManPage>) -> Result<(), ManualError> {
    let man = clap_mangen::Man::new(cmd.clone()).section(MAN_SECTION).manual("System Administration");
    let mut roff = Vec::new();
    man.render(&mut roff).map_err(|e| ManualError::Render(command.clone(), e))?;
    pages.push(ManPage { file_name: man.get_filename(), command: command.clone(), roff });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render(sub, format!("{command} {}", sub.get_name()), pages)?;
    }
    Ok(())
}

/// Writes every man page into `dir` (created if missing); returns the files written.
pub fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>, ManualError> {
    std::fs::create_dir_all(dir).map_err(|e| ManualError::CreateDir(dir.to_path_buf(), e))?;
    let mut written = Vec::new();
    for page in man_pages()? {
        let path = dir.join(&page.file_name);
        std::fs::write(&path, &page.roff).map_err(|e| ManualError::Write(path.clone(), e))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `bytes` to stdout.
pub fn print(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The subcommands users can type, from the clap definition itself.
    fn subcommands() -> Vec<String> {
        let cli = Cli::command();
        let names: Vec<String> =
            cli.get_subcommands().filter(|s| !s.is_hide_set()).map(|s| s.get_name().to_string()).collect();
        assert!(names.len() >= 8, "{names:?}");
        names
    }

    #[test]
    fn completions_offer_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completions(shell)).expect("UTF-8");
            for sub in subcommands() {
                assert!(script.contains(&sub), "{shell} completions lack {sub}");
            }
            // Flags of a subcommand, too.
            assert!(script.contains("pid-tree") && script.contains("ring-size"), "{shell}");
        }
    }

    #[test]
    fn there_is_a_man_page_per_subcommand_and_the_main_page_lists_them() {
        let pages = man_pages().expect("render");
        let main = pages.iter().find(|p| p.file_name == "mmnotif-trace.8").expect("mmnotif-trace.8");
        let main_text = String::from_utf8_lossy(&main.roff);
        assert!(main_text.starts_with(".ie") || main_text.contains(".TH"), "not roff: {main_text:.200}");
        assert!(main_text.contains(".TH mmnotif-trace 8"), "{main_text:.300}");
        for sub in subcommands() {
            assert!(main_text.contains(&sub), "mmnotif-trace.8 does not mention {sub}");
            let file = format!("mmnotif-trace-{sub}.8");
            let page = pages.iter().find(|p| p.file_name == file).unwrap_or_else(|| panic!("no {file}"));
            assert_eq!(page.command, format!("mmnotif-trace {sub}"));
            let text = String::from_utf8_lossy(&page.roff);
            // Every long flag of the subcommand is documented on its page (hidden ones are kept
            // for old command lines only).
            let cli = Cli::command();
            let cmd = cli.find_subcommand(&sub).expect("subcommand");
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    // roff escapes '-' as '\-'.
                    let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(text.contains(&escaped) || text.contains(&format!("--{long}")), "{file} lacks --{long}");
                }
            }
        }
    }

    #[test]
    fn man_pages_are_written_to_a_directory() {
        let dir = std::env::temp_dir().join(format!("mmnotif-man-{}", std::process::id()));
        let files = write_man_pages(&dir).expect("write");
        assert_eq!(files.len(), subcommands().len() + 1);
        assert!(files.iter().all(|f| f.metadata().map(|m| m.len() > 100).unwrap_or(false)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
