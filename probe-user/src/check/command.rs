//! The wrapped command's result, as every report shows it.

use serde::Serialize;

/// How the command ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CommandEnd {
    Exited {
        code: i32,
    },
    Signaled {
        signal: i32,
    },
    /// `--timeout` ran out; the command was then stopped with `signal`.
    TimedOut {
        seconds: f64,
        signal: i32,
    },
}

impl CommandEnd {
    pub fn passed(&self) -> bool {
        matches!(self, CommandEnd::Exited { code: 0 })
    }

    /// "exit status 0", "killed by signal 9", "timed out after 30 s (stopped with signal 15)".
    pub fn describe(&self) -> String {
        match self {
            CommandEnd::Exited { code } => format!("exit status {code}"),
            CommandEnd::Signaled { signal } => format!("killed by signal {signal}"),
            CommandEnd::TimedOut { seconds, signal } => {
                format!("timed out after {seconds} s (stopped with signal {signal})")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CommandResult {
    pub argv: Vec<String>,
    pub pid: u32,
    #[serde(flatten)]
    pub end: CommandEnd,
    /// CLOCK_MONOTONIC ns (the events' clock) when it was started and when it ended.
    pub started_ts: u64,
    pub ended_ts: u64,
}

impl CommandResult {
    /// The command line for messages, each argument quoted when it needs it.
    pub fn command_line(&self) -> String {
        self.argv.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" ")
    }
}

fn shell_word(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain { arg.to_owned() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_each_ending_and_quotes_the_command_line() {
        assert!(CommandEnd::Exited { code: 0 }.passed());
        assert!(!CommandEnd::Exited { code: 3 }.passed());
        assert!(!CommandEnd::Signaled { signal: 9 }.passed());
        assert_eq!(
            CommandEnd::TimedOut { seconds: 1.5, signal: 15 }.describe(),
            "timed out after 1.5 s (stopped with signal 15)"
        );
        let r = CommandResult {
            argv: vec!["sh".into(), "-c".into(), "echo 'hi'; exit 3".into()],
            pid: 1,
            end: CommandEnd::Exited { code: 3 },
            started_ts: 0,
            ended_ts: 0,
        };
        assert_eq!(r.command_line(), r#"sh -c 'echo '\''hi'\''; exit 3'"#);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["status"], "exited");
        assert_eq!(json["code"], 3);
    }
}
