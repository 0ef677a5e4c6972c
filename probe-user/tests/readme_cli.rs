//! The README's task guide ("## How do I …") is tested, not just read: every `mmnotif-trace`
//! command line of its `sh` blocks parses with the CLI's own definition; `sudo` marks exactly
//! the commands that need root; the commands that need neither root nor a live kernel run
//! with the built binary against the repository's own files (the checker's corpus) and exit
//! with the status the README documents in a trailing `# exits N` comment (0 when there is
//! none); and every subcommand is used in the guide, so a new one has to be documented.

mod common;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command as Process,
};

use clap::{CommandFactory, Parser, error::ErrorKind};
use common::BIN;
use mmnotif_trace::cli::{Cli, Command};

const GUIDE_HEADING: &str = "## How do I …";

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// One command line of the guide.
#[derive(Debug)]
struct GuideCommand {
    /// The README line it starts on (1-based).
    line: usize,
    /// The line as written (continuations joined).
    text: String,
    /// Prefixed by `sudo`.
    sudo: bool,
    /// `mmnotif-trace` and its arguments, up to the first pipe or redirection.
    argv: Vec<String>,
    /// The trailing `# …` comment, if any.
    comment: Option<String>,
}

impl GuideCommand {
    fn at(&self) -> String {
        format!("README.md:{}: `{}`", self.line, self.text)
    }

    /// The exit status the README documents: `# exits N` (0 without such a comment), and the
    /// words after `exits N:` that the output must contain.
    fn documented(&self) -> (i32, Vec<String>) {
        let Some(rest) = self.comment.as_deref().and_then(|c| c.trim().strip_prefix("exits ")) else {
            return (0, Vec::new());
        };
        let (status, names) = rest.split_once(':').unwrap_or((rest, ""));
        let status = status.trim().parse().unwrap_or_else(|_| panic!("{}: `# exits N` needs a number", self.at()));
        (status, names.split(',').map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect())
    }

    /// The value after `flag` (`--flag VALUE` or `--flag=VALUE`), if present.
    fn value_of(&self, flag: &str) -> Option<&str> {
        let mut args = self.argv.iter();
        while let Some(a) = args.next() {
            if a == flag {
                return args.next().map(String::as_str);
            }
            if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                return Some(v);
            }
        }
        None
    }

    fn has(&self, flag: &str) -> bool {
        self.argv.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    }
}

/// What a parsed guide command needs.
#[derive(Debug, PartialEq)]
enum Needs {
    /// Nothing: it runs here, as any user, on the repository's files.
    Nothing,
    /// Root (it loads BPF programs).
    Root,
    /// Neither root nor BPF, but a live kernel resource or a terminal (`workload`: /dev/kvm;
    /// `replay --tui`: a terminal). Only parsed.
    Live,
    /// It does not parse (`every_guide_command_parses` says why).
    Unparsed,
}

fn needs(cmd: &GuideCommand) -> Needs {
    match Cli::try_parse_from(&cmd.argv) {
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => Needs::Nothing,
        Err(_) => Needs::Unparsed,
        Ok(cli) => match cli.command {
            None => Needs::Root,
            Some(Command::Probe(_) | Command::Stream(_) | Command::Record(_) | Command::Inventory(_)) => Needs::Root,
            Some(Command::Selftest(_)) => Needs::Root,
            Some(Command::Check(c)) if c.replay.is_none() => Needs::Root,
            Some(Command::Check(_)) => Needs::Nothing,
            Some(Command::Replay(r)) if r.tui => Needs::Live,
            Some(Command::Replay(_)) => Needs::Nothing,
            Some(Command::Workload(_)) => Needs::Live,
            Some(Command::Completions(_) | Command::Man(_)) => Needs::Nothing,
        },
    }
}

/// Splits a shell line into words: whitespace separates, single and double quotes group,
/// a backslash escapes the next character (in double quotes: `"`, `\`, `$`, `` ` ``), and an
/// unquoted `#` at the start of a word begins a comment. Returns the words, each with whether
/// any part of it was quoted, and the comment.
fn shell_words(line: &str) -> (Vec<(String, bool)>, Option<String>) {
    let mut words = Vec::new();
    let mut word: Option<(String, bool)> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '#' if word.is_none() => return (words, Some(chars.collect())),
            '\'' => {
                let w = word.get_or_insert_with(Default::default);
                w.1 = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    w.0.push(q);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(Default::default);
                w.1 = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            w.0.extend(chars.next());
                        }
                        q => w.0.push(q),
                    }
                }
            }
            '\\' => word.get_or_insert_with(Default::default).0.extend(chars.next()),
            c => word.get_or_insert_with(Default::default).0.push(c),
        }
    }
    words.extend(word);
    (words, None)
}

/// The guide: the README from its heading to the next `## ` heading, with the line number of
/// its first line.
fn guide(readme: &str) -> (usize, Vec<&str>) {
    let lines: Vec<&str> = readme.lines().collect();
    let start =
        lines.iter().position(|l| *l == GUIDE_HEADING).unwrap_or_else(|| panic!("README.md has no `{GUIDE_HEADING}`"));
    let end = lines[start + 1..].iter().position(|l| l.starts_with("## ")).map_or(lines.len(), |n| start + 1 + n);
    (start + 1, lines[start..end].to_vec())
}

/// Every command line of the guide's `sh` blocks that runs `mmnotif-trace` (or `sudo
/// mmnotif-trace`).
fn guide_commands() -> Vec<GuideCommand> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let (first, lines) = guide(&readme);
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending: Option<(usize, String)> = None;
    for (n, line) in lines.iter().enumerate() {
        let number = first + n;
        if !in_sh {
            in_sh = line.trim() == "```sh";
            continue;
        }
        if line.trim() == "```" {
            assert!(pending.is_none(), "README.md:{number}: an sh block ends in a line continuation");
            in_sh = false;
            continue;
        }
        let (start, mut text) = pending.take().unwrap_or((number, String::new()));
        if let Some(head) = line.strip_suffix('\\') {
            text.push_str(head);
            pending = Some((start, text));
            continue;
        }
        text.push_str(line);
        let (words, comment) = shell_words(&text);
        let mut words = words.into_iter().peekable();
        let sudo = words.next_if(|(w, q)| w == "sudo" && !q).is_some();
        if words.peek().is_none_or(|(w, _)| w != "mmnotif-trace") {
            continue;
        }
        let argv = words
            .take_while(|(w, quoted)| {
                *quoted || !(["|", "||", "&&", ";", "&"].contains(&w.as_str()) || w.starts_with(['>', '<']))
            })
            .map(|(w, _)| w)
            .collect();
        commands.push(GuideCommand { line: start, text: text.trim().to_owned(), sudo, argv, comment });
    }
    assert!(!in_sh, "README.md: the guide's last sh block is not closed");
    commands
}

#[test]
fn shell_words_splits_like_a_shell() {
    let (w, c) = shell_words(r#"a 'b c' "d \"e\"" f\ g h#i  # exits 1: x"#);
    let w: Vec<&str> = w.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(w, ["a", "b c", "d \"e\"", "f g", "h#i"]);
    assert_eq!(c.as_deref(), Some(" exits 1: x"));
    let (w, _) = shell_words("x '>' > y");
    assert_eq!(w, [("x".to_owned(), false), (">".to_owned(), true), (">".to_owned(), false), ("y".to_owned(), false)]);
}

#[test]
fn every_guide_command_parses() {
    let commands = guide_commands();
    assert!(commands.len() >= 10, "the guide has only {} mmnotif-trace commands", commands.len());
    let failures: Vec<String> = commands
        .iter()
        .filter_map(|cmd| match Cli::try_parse_from(&cmd.argv) {
            Ok(_) => None,
            Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => None,
            Err(e) => Some(format!("{} does not parse: {}", cmd.at(), e.render().to_string().trim())),
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn guide_uses_every_subcommand() {
    let commands = guide_commands();
    let used: BTreeSet<&str> =
        commands.iter().filter_map(|cmd| cmd.argv.get(1).map(String::as_str)).filter(|a| !a.starts_with('-')).collect();
    let missing: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .filter(|name| !used.contains(name.as_str()))
        .collect();
    assert!(missing.is_empty(), "the README's task guide has no command using {missing:?}: add a `How do I …` entry");
}

#[test]
fn sudo_marks_exactly_the_commands_that_need_root() {
    let wrong: Vec<String> = guide_commands()
        .iter()
        .filter(|cmd| needs(cmd) != Needs::Unparsed && cmd.sudo != (needs(cmd) == Needs::Root))
        .map(|cmd| {
            if cmd.sudo {
                format!("{} does not need root: drop the sudo", cmd.at())
            } else {
                format!("{} needs root: write it with sudo", cmd.at())
            }
        })
        .collect();
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// The exit statuses a corpus trace's `.expect` verdict allows for `replay` and for
/// `check --replay`, and the rules it must name.
fn corpus_expectation(trace: &Path, check: bool) -> Option<(Vec<i32>, Vec<String>)> {
    let expect = std::fs::read_to_string(trace.with_extension("expect")).ok()?;
    let mut statuses = Vec::new();
    let mut rules = Vec::new();
    for line in expect.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        match line.split_once(' ') {
            Some(("verdict", v)) => {
                statuses = match (v, check) {
                    ("pass", false) => vec![0],
                    ("pass", true) => vec![0, 4],
                    ("fail", _) => vec![1],
                    ("incomplete", false) => vec![1],
                    ("incomplete", true) => vec![5],
                    (v, _) => panic!("{}: unknown verdict {v}", trace.display()),
                }
            }
            Some(("not-checked" | "note", _)) => {}
            _ => rules.push(line.to_owned()),
        }
    }
    Some((statuses, rules))
}

#[test]
fn guide_commands_without_root_run_as_documented() {
    let root = repo();
    let scratch = std::env::temp_dir().join(format!("mmnotif-readme-{}", std::process::id()));
    let mut failures = Vec::new();
    let mut ran = Vec::new();
    for cmd in guide_commands().iter().filter(|cmd| needs(cmd) == Needs::Nothing) {
        // Each command runs in a directory of its own, where `probe-user/` is the repository's:
        // the README's paths resolve as from a clone, and reports land in the scratch directory.
        let cwd = scratch.join(format!("line-{}", cmd.line));
        std::fs::create_dir_all(&cwd).expect("scratch dir");
        std::os::unix::fs::symlink(root.join("probe-user"), cwd.join("probe-user")).expect("symlink");
        for path in cmd.argv.iter().filter(|a| a.starts_with("probe-user/")) {
            if !root.join(path).exists() {
                failures.push(format!("{}: {path} is not in the repository", cmd.at()));
            }
        }
        let o = Process::new(BIN).args(&cmd.argv[1..]).current_dir(&cwd).output().expect("run mmnotif-trace");
        let output = format!("{}{}", common::stdout(&o), common::stderr(&o));
        let status = o.status.code().unwrap_or(-1);
        ran.push(cmd.argv[1].clone());

        let (documented, names) = cmd.documented();
        if status != documented {
            failures.push(format!("{} exits {status}, the README says {documented}:\n{output}", cmd.at()));
        }
        // A rule's violation is printed as `[rule-id] …` (a KTAP report lists every rule id).
        for name in &names {
            if !output.contains(&format!("[{name}]")) {
                failures.push(format!("{}: the output reports no [{name}] violation:\n{output}", cmd.at()));
            }
        }
        // A corpus trace judged as it is: the README's status agrees with the corpus.
        let check = cmd.argv[1] == "check";
        let trace = if check { cmd.value_of("--replay") } else { cmd.argv.get(2).map(String::as_str) };
        let judged_as_is = !["--allow", "--fail-on", "--allow-lost"].iter().any(|f| cmd.has(f));
        if let Some(trace) = trace.filter(|t| t.starts_with("probe-user/tests/corpus/"))
            && judged_as_is
            && ["replay", "check"].contains(&cmd.argv[1].as_str())
        {
            match corpus_expectation(&root.join(trace), check) {
                None => failures.push(format!("{}: {trace} has no .expect", cmd.at())),
                Some((statuses, rules)) => {
                    if !statuses.contains(&documented) {
                        failures.push(format!("{}: the corpus expects exit {statuses:?}", cmd.at()));
                    }
                    for rule in rules.iter().filter(|r| !output.contains(&format!("[{r}]"))) {
                        failures.push(format!("{}: the output reports no [{rule}] violation:\n{output}", cmd.at()));
                    }
                }
            }
        }
        // The reports and pages it says it writes are there.
        for flag in ["--junit", "--json", "--ktap-file", "--dir"] {
            let Some(file) = cmd.value_of(flag) else { continue };
            let written = match std::fs::read_dir(cwd.join(file)) {
                Ok(mut dir) => dir.next().is_some(),
                Err(_) => std::fs::metadata(cwd.join(file)).is_ok_and(|m| m.len() > 0),
            };
            if !written {
                failures.push(format!("{}: {flag} {file} was not written", cmd.at()));
            }
        }
        if cmd.has("--ktap") && !common::stdout(&o).contains("KTAP version 1") {
            failures.push(format!("{}: no KTAP report on stdout", cmd.at()));
        }
    }
    std::fs::remove_dir_all(&scratch).ok();
    for needed in ["replay", "check", "completions", "man", "--help", "--version"] {
        if !ran.iter().any(|r| r == needed) {
            failures.push(format!("the guide has no `mmnotif-trace {needed}` this test can run"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
