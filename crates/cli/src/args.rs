//! A small command-line parser: each command declares its flags, its options (each
//! with an optional short alias) and how many positional arguments it takes. Anything
//! else is a usage error naming the command.

use crate::CliError;
use std::str::FromStr;

/// Options that may be given more than once (`--text A --text B`); every other option
/// given twice is a usage error.
pub const REPEATABLE: &[&str] = &["--text", "--dim", "--zero-input"];

/// What one command accepts.
pub struct Spec {
    /// The command, for messages (`job run`).
    pub command: &'static str,
    /// Its usage text (printed by `--help`).
    pub usage: &'static str,
    /// Options without a value (`--json`).
    pub flags: &'static [&'static str],
    /// Options with a value: the long name and an optional short alias (`-o`).
    pub options: &'static [(&'static str, Option<&'static str>)],
    /// Names of the positional arguments, all required (`FILE`).
    pub positionals: &'static [&'static str],
}

/// A parsed command line.
#[derive(Debug)]
pub struct Args {
    command: &'static str,
    flags: Vec<&'static str>,
    options: Vec<(&'static str, String)>,
    /// The positional arguments, as many as the spec names.
    pub positionals: Vec<String>,
}

/// The result of parsing: the arguments, or a request for the command's help.
pub enum Parsed {
    /// Run the command.
    Run(Args),
    /// `-h` or `--help` was given.
    Help,
}

impl Spec {
    fn usage_err(&self, what: String) -> CliError {
        CliError::usage(format!("{what} (try `tb-cli {} --help`)", self.command))
    }

    /// Parses `args` (the words after the command). Options may be written
    /// `--name VALUE` or `--name=VALUE`; `--` ends the options.
    pub fn parse(&self, args: &[String]) -> Result<Parsed, CliError> {
        let mut out = Args {
            command: self.command,
            flags: Vec::new(),
            options: Vec::new(),
            positionals: Vec::new(),
        };
        let mut it = args.iter();
        let mut options_done = false;
        while let Some(a) = it.next() {
            if options_done || !a.starts_with('-') || a == "-" {
                out.positionals.push(a.clone());
                continue;
            }
            if a == "--" {
                options_done = true;
                continue;
            }
            if a == "-h" || a == "--help" {
                return Ok(Parsed::Help);
            }
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (a.as_str(), None),
            };
            if let Some(flag) = self.flags.iter().find(|f| **f == name) {
                if inline.is_some() {
                    return Err(self.usage_err(format!("{flag} takes no value")));
                }
                if out.flags.contains(flag) {
                    return Err(self.usage_err(format!("{flag} is given twice")));
                }
                out.flags.push(flag);
                continue;
            }
            let Some((long, _)) = self
                .options
                .iter()
                .find(|(long, short)| *long == name || *short == Some(name))
            else {
                return Err(self.usage_err(format!("unknown option {name} for `{}`", self.command)));
            };
            let value = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| self.usage_err(format!("{long} needs a value")))?,
            };
            if !REPEATABLE.contains(long) && out.options.iter().any(|(n, _)| n == long) {
                return Err(self.usage_err(format!("{long} is given twice")));
            }
            out.options.push((long, value));
        }
        if out.positionals.len() < self.positionals.len() {
            let missing = self.positionals[out.positionals.len()];
            return Err(self.usage_err(format!("`{}` needs {missing}", self.command)));
        }
        if out.positionals.len() > self.positionals.len() {
            let extra = &out.positionals[self.positionals.len()];
            return Err(self.usage_err(format!("unexpected argument {extra:?}")));
        }
        Ok(Parsed::Run(out))
    }
}

impl Args {
    /// The command these arguments are of (`job run`).
    pub fn command_name(&self) -> &'static str {
        self.command
    }

    /// Whether flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }

    /// The value of option `name`, if given.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable option, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.options
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of a required option.
    pub fn required(&self, name: &str) -> Result<&str, CliError> {
        self.value(name).ok_or_else(|| {
            CliError::usage(format!(
                "`{}` needs {name} (try `tb-cli {} --help`)",
                self.command, self.command
            ))
        })
    }

    /// The value of option `name` parsed as `T`; `what` describes the expected form.
    pub fn parsed<T: FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, CliError> {
        self.value(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| CliError::usage(format!("{name} {v:?}: expected {what}")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        command: "job test",
        usage: "",
        flags: &["--json"],
        options: &[("--out", Some("-o")), ("--op", None)],
        positionals: &["FILE"],
    };

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// Flags, options and positionals of a successful parse.
    type Expected<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);

    fn check(input: &str, expected: Result<Expected<'_>, &str>) {
        match (SPEC.parse(&words(input)), expected) {
            (Ok(Parsed::Run(a)), Ok((flags, options, positionals))) => {
                assert_eq!(a.flags, flags, "{input}");
                let got: Vec<(&str, &str)> =
                    a.options.iter().map(|(n, v)| (*n, v.as_str())).collect();
                assert_eq!(got, options, "{input}");
                assert_eq!(a.positionals, positionals, "{input}");
            }
            (Err(e), Err(fragment)) => {
                assert_eq!(e.code, crate::EXIT_USAGE, "{input}");
                assert!(e.message.contains(fragment), "{input}: {}", e.message);
            }
            (Ok(Parsed::Help), Err("help")) => {}
            (got, want) => panic!(
                "{input}: got {}, want {want:?}",
                match got {
                    Ok(Parsed::Run(a)) => format!("{a:?}"),
                    Ok(Parsed::Help) => "help".into(),
                    Err(e) => e.message,
                }
            ),
        }
    }

    #[test]
    fn parses_and_refuses() {
        check("f --json", Ok((&["--json"], &[], &["f"])));
        check("-o x f", Ok((&[], &[("--out", "x")], &["f"])));
        check(
            "--out=x f --op 3",
            Ok((&[], &[("--out", "x"), ("--op", "3")], &["f"])),
        );
        check("-- -f", Ok((&[], &[], &["-f"])));
        check("f --help", Err("help"));
        check("f --bogus", Err("unknown option --bogus"));
        check("f --op", Err("--op needs a value"));
        check("f --json --json", Err("given twice"));
        check("f --json=1", Err("takes no value"));
        check("f -o a --out b", Err("given twice"));
        check("", Err("needs FILE"));
        check("f g", Err("unexpected argument \"g\""));
    }
}
