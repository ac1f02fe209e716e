//! Each command declares its flags, its options (each with an optional short alias) and
//! its positional arguments as a [`Spec`]; clap parses the words against it
//! ([`Spec::command`]), renders its help and refuses anything else with a usage error
//! naming the command. The command code reads the result through [`Args`].

use crate::CliError;
use clap::{Arg, ArgAction};
use std::str::FromStr;

/// Options that may be given more than once (`--text A --text B`); every other option
/// given twice is a usage error.
pub const REPEATABLE: &[&str] = &["--text", "--dim", "--zero-input", "--event"];

/// What one command accepts.
pub struct Spec {
    /// The command, for messages (`job run`).
    pub command: &'static str,
    /// Its usage text: the `usage:` lines, a blank line, then what it does (the help's
    /// usage and its text after the options).
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

/// The result of parsing: the arguments, or the command's help to print.
pub enum Parsed {
    /// Run the command.
    Run(Args),
    /// `-h` or `--help` was given: the help text.
    Help(String),
}

/// A clap error as one line: its message up to the first blank line, without the
/// `error: ` prefix and without the usage and tips clap adds.
pub fn clap_one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut out = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        if l.is_empty() {
            if out.is_empty() {
                continue;
            }
            break;
        }
        out.push(l.strip_prefix("error: ").unwrap_or(l).to_string());
    }
    out.join(" ")
}

impl Spec {
    fn usage_err(&self, what: String) -> CliError {
        CliError::usage(format!("{what} (try `tb-cli {} --help`)", self.command))
    }

    /// The command's last word (`run` of `job run`).
    pub fn name(&self) -> &'static str {
        self.command.rsplit(' ').next().unwrap_or(self.command)
    }

    /// The clap command of this spec.
    pub fn command(&self) -> clap::Command {
        let (usage, about) = self.usage.split_once("\n\n").unwrap_or((self.usage, ""));
        let usage: Vec<&str> = usage
            .lines()
            .map(|l| l.strip_prefix("usage: ").unwrap_or(l))
            .collect();
        let mut c = clap::Command::new(self.name())
            .override_usage(usage.join("\n"))
            .disable_version_flag(true);
        if let Some(first) = about.split("\n\n").next() {
            c = c.about(first.replace('\n', " "));
        }
        if !about.is_empty() {
            c = c.after_help(about.to_string());
        }
        for f in self.flags {
            c = c.arg(
                Arg::new(*f)
                    .long(f.trim_start_matches('-'))
                    .action(ArgAction::SetTrue),
            );
        }
        for (long, short) in self.options {
            let name = long.trim_start_matches('-');
            let mut a = Arg::new(*long)
                .long(name)
                .value_name(name.to_uppercase().replace('-', "_"))
                .num_args(1)
                .allow_hyphen_values(true)
                .action(if REPEATABLE.contains(long) {
                    ArgAction::Append
                } else {
                    ArgAction::Set
                });
            if let Some(ch) = short.and_then(|s| s.trim_start_matches('-').chars().next()) {
                a = a.short(ch);
            }
            c = c.arg(a);
        }
        for (i, p) in self.positionals.iter().enumerate() {
            c = c.arg(
                Arg::new(*p)
                    .index(i + 1)
                    .required(true)
                    .value_name(*p)
                    .allow_hyphen_values(i > 0),
            );
        }
        c
    }

    /// Parses `args` (the words after the command). Options may be written
    /// `--name VALUE` or `--name=VALUE`; `--` ends the options.
    pub fn parse(&self, args: &[String]) -> Result<Parsed, CliError> {
        let words = std::iter::once(self.name().to_string()).chain(args.iter().cloned());
        let m = match self.command().try_get_matches_from(words) {
            Ok(m) => m,
            Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
                return Ok(Parsed::Help(self.command().render_help().to_string()))
            }
            Err(e) => return Err(self.usage_err(clap_one_line(&e))),
        };
        let mut out = Args {
            command: self.command,
            flags: Vec::new(),
            options: Vec::new(),
            positionals: Vec::new(),
        };
        for f in self.flags {
            if m.get_flag(f) {
                out.flags.push(f);
            }
        }
        for (long, _) in self.options {
            for v in m.get_many::<String>(long).into_iter().flatten() {
                out.options.push((long, v.clone()));
            }
        }
        for p in self.positionals {
            if let Some(v) = m.get_one::<String>(p) {
                out.positionals.push(v.clone());
            }
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
            (Ok(Parsed::Help(h)), Err("help")) => assert!(h.contains("--out"), "{h}"),
            (got, want) => panic!(
                "{input}: got {}, want {want:?}",
                match got {
                    Ok(Parsed::Run(a)) => format!("{a:?}"),
                    Ok(Parsed::Help(_)) => "help".into(),
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
        check("f --bogus", Err("unexpected argument '--bogus'"));
        check("f --op", Err("a value is required for '--op <OP>'"));
        check("f --json --json", Err("cannot be used multiple times"));
        check("f --json=1", Err("unexpected value '1' for '--json'"));
        check("f -o a --out b", Err("cannot be used multiple times"));
        check("", Err("required arguments were not provided: <FILE>"));
        check("f g", Err("unexpected argument 'g'"));
    }
}
