//! The owner's tools on the command line, beside `serve`, `sweep` and `healthcheck`:
//!
//! - `imgedge sign PATH [--expires-in S]` signs a `/i` path offline, with the key from
//!   `IMGEDGE_SIGNING_KEY`, `--key-file FILE` (`-` for standard input) or `--key HEX`;
//! - `imgedge url ID OPS [--expires-in S]` signs a variant with the owner's key from the
//!   configured database, by the rules the API signs with;
//! - `imgedge user create NAME [--plan P]` (password from `IMGEDGE_PASSWORD`,
//!   `--password-file FILE` or the first line of standard input), `user list`,
//!   `user set-plan NAME PLAN`, `user delete NAME` (with the user's images and presets);
//! - `imgedge presets list USER`;
//! - `imgedge purge IMAGE_ID`: every cached variant of the image gone (as its owner would
//!   with `DELETE /v1/images/{id}/variants`).
//!
//! Every verb but `sign` goes through the same domain services as the HTTP API. Each prints its
//! result on stdout; a bad input is one line on stderr and exit code 2, a backend failure exit
//! code 1. Secrets never need to be on the command line, where `ps` shows them.

use std::fmt::Write as _;

use crate::auth::signature::MAX_EXPIRES_IN;
use crate::auth::SigningKey;
use crate::clock::{rfc3339, Clock};
use crate::config::Config;
use crate::error::Error;
use crate::services::Services;
use crate::transform::grammar;

/// Usage of the tools, for the binary's help text.
pub const USAGE: &str =
    "       imgedge sign --key HEX PATH [--expires-in SECONDS]   (or the key from IMGEDGE_SIGNING_KEY
                                                            or --key-file FILE, - for stdin)
       imgedge url IMAGE_ID OPS [--expires-in SECONDS] [--config PATH]
       imgedge user create NAME [--plan PLAN] [--config PATH]   (password from IMGEDGE_PASSWORD,
                                                  --password-file FILE or the first line of stdin)
       imgedge user list|set-plan NAME PLAN|delete NAME [--config PATH]
       imgedge presets list USER [--config PATH]
       imgedge purge IMAGE_ID [--config PATH]   (every cached variant of the image)";

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// Given on the command line.
    Given(String),
    /// The first line of this file (`-`: standard input).
    File(String),
    /// The environment variable, else the first line of standard input (passwords) or nothing.
    Default,
}

/// A tool and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tool {
    /// Sign `path` with `key`.
    Sign {
        /// The signing key, 64 hex digits.
        key: Secret,
        /// A `/i/…` path.
        path: String,
        /// Seconds the signature lives; forever without.
        expires_in: Option<u64>,
    },
    /// Sign a variant of an image with its owner's key.
    Url {
        /// Image id.
        id: String,
        /// Ops (canonicalised).
        ops: String,
        /// Seconds the signature lives; forever without.
        expires_in: Option<u64>,
    },
    /// Create a user; the password is read from stdin.
    UserCreate {
        /// Username.
        name: String,
        /// Plan.
        plan: Option<String>,
        /// The password.
        password: Secret,
    },
    /// List users.
    UserList,
    /// Move a user to a plan.
    UserSetPlan {
        /// Username.
        name: String,
        /// Plan.
        plan: String,
    },
    /// Delete a user, their images and presets.
    UserDelete {
        /// Username.
        name: String,
    },
    /// List a user's presets.
    PresetsList {
        /// Username.
        user: String,
    },
    /// Purge an image's cached variants.
    Purge {
        /// Image id.
        id: String,
    },
}

/// Why a tool failed: the caller's input (exit 2) or a backend (exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// Bad arguments or input.
    Usage(String),
    /// The database or the store failed.
    Backend(String),
}

impl From<Error> for ToolError {
    /// The caller's mistakes (4xx) are usage errors, the rest backend failures.
    fn from(e: Error) -> Self {
        if e.status().is_client_error() {
            Self::Usage(e.to_string())
        } else {
            Self::Backend(format!("{e}: {}", chain(&e)))
        }
    }
}

/// The causes of `e`, innermost last.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut causes = Vec::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        causes.push(c.to_string());
        cause = c.source();
    }
    causes.join(": ")
}

/// Parses a tool's words (after the tool's name, `--config` already taken out); `None` when
/// `name` is not a tool.
///
/// # Errors
/// A usage message for missing or malformed arguments.
pub fn parse(name: &str, args: &[String]) -> Result<Option<Tool>, String> {
    if !matches!(name, "sign" | "url" | "user" | "presets" | "purge") {
        return Ok(None);
    }
    let mut expires_in = None;
    let (mut key, mut password) = (Secret::Default, Secret::Default);
    let mut plan = None;
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--expires-in" => {
                let v = it.next().ok_or("--expires-in needs seconds")?;
                let secs = v.parse::<u64>().ok().filter(|s| (1..=MAX_EXPIRES_IN).contains(s));
                expires_in =
                    Some(secs.ok_or_else(|| format!("--expires-in: `{v}` is not 1 to {MAX_EXPIRES_IN} seconds"))?);
            }
            "--key" => key = Secret::Given(it.next().ok_or("--key needs 64 hex digits")?.clone()),
            "--key-file" => key = Secret::File(it.next().ok_or("--key-file needs a file (- for stdin)")?.clone()),
            "--password-file" => {
                password = Secret::File(it.next().ok_or("--password-file needs a file (- for stdin)")?.clone());
            }
            "--plan" => plan = Some(it.next().ok_or("--plan needs a name")?.clone()),
            other if other.starts_with("--") => return Err(format!("unknown option `{other}`")),
            word => words.push(word.to_owned()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let tool = match (name, words.as_slice()) {
        ("sign", [path]) => Tool::Sign { key, path: (*path).to_owned(), expires_in },
        ("sign", _) => return Err("sign takes one PATH, e.g. /i/ID/w_300,fmt_webp".into()),
        ("url", [id, ops]) => Tool::Url { id: (*id).to_owned(), ops: (*ops).to_owned(), expires_in },
        ("url", _) => return Err("url takes IMAGE_ID and OPS".into()),
        ("user", ["create", name]) => Tool::UserCreate { name: (*name).to_owned(), plan, password },
        ("user", ["list"]) => Tool::UserList,
        ("user", ["set-plan", name, plan]) => Tool::UserSetPlan { name: (*name).to_owned(), plan: (*plan).to_owned() },
        ("user", ["delete", name]) => Tool::UserDelete { name: (*name).to_owned() },
        ("user", _) => return Err("user takes create NAME, list, set-plan NAME PLAN or delete NAME".into()),
        ("presets", ["list", user]) => Tool::PresetsList { user: (*user).to_owned() },
        ("presets", _) => return Err("presets takes list USER".into()),
        ("purge", [id]) => Tool::Purge { id: (*id).to_owned() },
        ("purge", _) => return Err("purge takes one IMAGE_ID".into()),
        _ => return Ok(None),
    };
    Ok(Some(tool))
}

/// Runs `tool`; `env` reads environment variables and `stdin` the first line of standard input
/// (only when a secret comes from there). Returns what to print.
///
/// # Errors
/// [`ToolError::Usage`] for bad input, [`ToolError::Backend`] when a backend fails.
pub async fn run(
    tool: Tool,
    config: &Config,
    env: impl Fn(&str) -> Option<String>,
    stdin: impl FnOnce() -> String,
) -> Result<String, ToolError> {
    let usage = |m: String| ToolError::Usage(m);
    let now = chrono::Utc::now().timestamp();
    let exp = |secs: Option<u64>| secs.map(|s| now + i64::try_from(s).unwrap_or(0));
    // The one tool that needs no database.
    let tool = match tool {
        Tool::Sign { key, path, expires_in } => {
            let key = secret(key, env("IMGEDGE_SIGNING_KEY"), stdin, false)?.ok_or_else(|| {
                usage("sign needs the owner's key: IMGEDGE_SIGNING_KEY, --key-file FILE or --key HEX".into())
            })?;
            let key = hex::decode(key.trim()).ok().and_then(|b| SigningKey::from_bytes(&b));
            let key = key.ok_or_else(|| usage("the signing key must be 64 hex digits".into()))?;
            check_path(&path, config.limits.max_dimension).map_err(usage)?;
            return Ok(key.signed_url(&path, exp(expires_in)));
        }
        other => other,
    };
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new(Vec::new()));
    let services = Services::open(config, Clock::system(), metrics)
        .await
        .map_err(|e| ToolError::Backend(format!("{e}: {}", chain(&e))))?;
    match tool {
        Tool::Sign { .. } => Err(usage("sign needs no database".into())),
        Tool::Url { id, ops, expires_in } => {
            let image = services.images.image(&id).await?;
            Ok(services.signing.url(&image, &ops, expires_in).await?.url)
        }
        Tool::UserCreate { name, plan, password } => {
            let secret = secret(password, env("IMGEDGE_PASSWORD"), stdin, true)?.unwrap_or_default();
            let user = services.accounts.register(&name, secret, plan.as_deref()).await?;
            Ok(format!("{}\t{}", user.id, user.username))
        }
        Tool::UserList => {
            let mut out = String::new();
            for u in services.accounts.list().await? {
                let _ = writeln!(out, "{}\t{}\t{}\t{}", u.id, u.username, u.plan, rfc3339(u.created_at));
            }
            Ok(out.trim_end().to_owned())
        }
        Tool::UserSetPlan { name, plan } => {
            let user = services.accounts.set_plan(&name, &plan).await?;
            Ok(format!("{}\t{}", user.username, user.plan))
        }
        Tool::UserDelete { name } => {
            let removed = services.accounts.delete(&name).await?;
            Ok(format!("deleted {} and {} images", removed.user.username, removed.images))
        }
        Tool::Purge { id } => {
            let image = services.images.image(&id).await?;
            services.images.purge_variants(&image.owner, &id).await?;
            Ok(format!("purged the variants of {id}"))
        }
        Tool::PresetsList { user } => {
            let user = services.accounts.named(&user).await?;
            let (mut out, mut cursor) = (String::new(), None);
            loop {
                let (page, next) = services.presets.list(&user.id, cursor.as_deref(), 100).await?;
                for p in page {
                    let _ = writeln!(out, "{}\t{}\t{}", p.name, p.ops, if p.public { "public" } else { "private" });
                }
                match next {
                    Some(next) => cursor = Some(next),
                    None => return Ok(out.trim_end().to_owned()),
                }
            }
        }
    }
}

/// The secret from where the command line said (a file of `-` is standard input), else from
/// `from_env`, else — when `stdin_by_default` — the first line of standard input; `None` when
/// none of them has it.
fn secret(
    source: Secret,
    from_env: Option<String>,
    stdin: impl FnOnce() -> String,
    stdin_by_default: bool,
) -> Result<Option<String>, ToolError> {
    let first_line = |text: String| text.lines().next().unwrap_or_default().trim_end_matches('\r').to_owned();
    match source {
        Secret::Given(value) => Ok(Some(value)),
        Secret::File(path) if path == "-" => Ok(Some(first_line(stdin()))),
        Secret::File(path) => std::fs::read_to_string(&path)
            .map(|text| Some(first_line(text)))
            .map_err(|e| ToolError::Usage(format!("cannot read {path}: {e}"))),
        Secret::Default => Ok(from_env.or_else(|| stdin_by_default.then(|| first_line(stdin())))),
    }
}

/// Checks that `path` is a `/i` path delivery serves: an image id, and ops that parse.
fn check_path(path: &str, max_dimension: u32) -> Result<(), String> {
    let rest = path.strip_prefix("/i/").filter(|_| !path.contains('?'));
    let rest = rest.ok_or_else(|| format!("`{path}` is not an /i path without a query"))?;
    let (id, ops) = rest.split_once('/').unwrap_or((rest, ""));
    crate::ids::ImageId::parse(id).ok_or_else(|| format!("`{id}` is not an image id"))?;
    let (_, beside) = grammar::split_preset(ops).map_err(|e| format!("ops: {e}"))?;
    grammar::parse_beside_preset(&beside, max_dimension).map_err(|e| format!("ops: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &str) -> Vec<String> {
        words.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn tools_parse_and_bad_input_is_named() {
        let sign = parse("sign", &args("--key ab /i/x/w_1 --expires-in 60")).unwrap();
        let key = Secret::Given("ab".into());
        assert_eq!(sign, Some(Tool::Sign { key, path: "/i/x/w_1".into(), expires_in: Some(60) }));
        let from_file = parse("sign", &args("--key-file - /i/x")).unwrap();
        assert!(matches!(from_file, Some(Tool::Sign { key: Secret::File(f), .. }) if f == "-"));
        assert_eq!(parse("user", &args("list")).unwrap(), Some(Tool::UserList));
        assert_eq!(parse("serve", &[]).unwrap(), None, "not a tool");
        assert_eq!(parse("sweep", &args("--grace-secs 0")).unwrap(), None, "its options are not ours");
        for (name, words) in [
            ("sign", "--key ab"),
            ("sign", "--key-file"),
            ("sign", "--key ab /i/x --expires-in 0"),
            ("url", "only-one"),
            ("user", "rename a b"),
            ("presets", "show x"),
            ("user", "list --force"),
        ] {
            assert!(parse(name, &args(words)).is_err(), "{name} {words}");
        }
    }
}
