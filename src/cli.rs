//! The owner's tools on the command line, beside `serve`, `sweep` and `healthcheck`:
//!
//! - `imgedge sign --key HEX PATH [--expires-in S]` signs a `/i` path offline;
//! - `imgedge url ID OPS [--expires-in S]` signs a variant with the owner's key from the
//!   configured database;
//! - `imgedge user create NAME [--plan P]` (password on stdin), `user list`,
//!   `user set-plan NAME PLAN`, `user delete NAME` (with the user's images and presets);
//! - `imgedge presets list USER`.
//!
//! Each prints its result on stdout; a bad input is one line on stderr and exit code 2, a
//! backend failure exit code 1.

use std::fmt::Write as _;

use crate::auth::signature::MAX_EXPIRES_IN;
use crate::auth::{password, SigningKey};
use crate::clock::rfc3339;
use crate::config::Config;
use crate::db::{self, to_micros, Db, DbError, NewUser, User};
use crate::ids::{ImageId, UserId};
use crate::storage::{self, BlobKeys};
use crate::transform::{self, grammar};

/// Usage of the tools, for the binary's help text.
pub const USAGE: &str = "       imgedge sign --key HEX PATH [--expires-in SECONDS]
       imgedge url IMAGE_ID OPS [--expires-in SECONDS] [--config PATH]
       imgedge user create NAME [--plan PLAN] [--config PATH]   (password: first line of stdin)
       imgedge user list|set-plan NAME PLAN|delete NAME [--config PATH]
       imgedge presets list USER [--config PATH]";

/// A tool and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tool {
    /// Sign `path` with `key`.
    Sign {
        /// The signing key, 64 hex digits.
        key: String,
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
}

/// Why a tool failed: the caller's input (exit 2) or a backend (exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// Bad arguments or input.
    Usage(String),
    /// The database or the store failed.
    Backend(String),
}

impl From<DbError> for ToolError {
    fn from(e: DbError) -> Self {
        Self::Backend(format!("database: {e}"))
    }
}

/// Parses a tool's words (after the tool's name, `--config` already taken out); `None` when
/// `name` is not a tool.
///
/// # Errors
/// A usage message for missing or malformed arguments.
pub fn parse(name: &str, args: &[String]) -> Result<Option<Tool>, String> {
    if !matches!(name, "sign" | "url" | "user" | "presets") {
        return Ok(None);
    }
    let mut expires_in = None;
    let mut key = None;
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
            "--key" => key = Some(it.next().ok_or("--key needs 64 hex digits")?.clone()),
            "--plan" => plan = Some(it.next().ok_or("--plan needs a name")?.clone()),
            other if other.starts_with("--") => return Err(format!("unknown option `{other}`")),
            word => words.push(word.to_owned()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let tool = match (name, words.as_slice()) {
        ("sign", [path]) => {
            let key = key.ok_or("sign needs --key HEX (the owner's signing key)")?;
            Tool::Sign { key, path: (*path).to_owned(), expires_in }
        }
        ("sign", _) => return Err("sign takes one PATH, e.g. /i/ID/w_300,fmt_webp".into()),
        ("url", [id, ops]) => Tool::Url { id: (*id).to_owned(), ops: (*ops).to_owned(), expires_in },
        ("url", _) => return Err("url takes IMAGE_ID and OPS".into()),
        ("user", ["create", name]) => Tool::UserCreate { name: (*name).to_owned(), plan },
        ("user", ["list"]) => Tool::UserList,
        ("user", ["set-plan", name, plan]) => Tool::UserSetPlan { name: (*name).to_owned(), plan: (*plan).to_owned() },
        ("user", ["delete", name]) => Tool::UserDelete { name: (*name).to_owned() },
        ("user", _) => return Err("user takes create NAME, list, set-plan NAME PLAN or delete NAME".into()),
        ("presets", ["list", user]) => Tool::PresetsList { user: (*user).to_owned() },
        ("presets", _) => return Err("presets takes list USER".into()),
        _ => return Ok(None),
    };
    Ok(Some(tool))
}

/// Runs `tool`; `stdin` is read only by `user create`. Returns what to print.
///
/// # Errors
/// [`ToolError::Usage`] for bad input, [`ToolError::Backend`] when a backend fails.
pub async fn run(tool: Tool, config: &Config, stdin: impl FnOnce() -> String) -> Result<String, ToolError> {
    let usage = |m: String| ToolError::Usage(m);
    let now = chrono::Utc::now();
    let exp = |secs: Option<u64>| secs.map(|s| now.timestamp() + i64::try_from(s).unwrap_or(0));
    // The one tool that needs no database.
    let tool = match tool {
        Tool::Sign { key, path, expires_in } => {
            let key = hex::decode(key).ok().and_then(|b| SigningKey::from_bytes(&b));
            let key = key.ok_or_else(|| usage("--key must be 64 hex digits".into()))?;
            if !path.starts_with("/i/") || path.contains('?') {
                return Err(usage(format!("`{path}` is not an /i path without a query")));
            }
            return Ok(key.signed_url(&path, exp(expires_in)));
        }
        other => other,
    };
    let db = db::connect(&config.database).await?;
    match tool {
        Tool::Sign { .. } => Err(usage("sign needs no database".into())),
        Tool::Url { id, ops, expires_in } => {
            let image_id = ImageId::parse(&id).ok_or_else(|| usage(format!("`{id}` is not an image id")))?;
            let image = db.image(&image_id).await?.ok_or_else(|| usage(format!("no image `{id}`")))?;
            let owner = db.owner_key(&image.owner).await?.ok_or_else(|| usage("the image has no owner".into()))?;
            let path = variant_path(&db, &image.owner, &image_id, &ops, config.limits.max_dimension).await?;
            Ok(owner.signing_key.signed_url(&path, exp(expires_in)))
        }
        Tool::UserCreate { name, plan } => {
            let secret = stdin();
            let secret = secret.trim_end_matches(['\r', '\n']);
            password::check_username(&name).map_err(|m| usage(m.into()))?;
            password::check_password(secret).map_err(|m| usage(m.into()))?;
            let hash = password::hash(secret).map_err(|e| ToolError::Backend(format!("hashing: {e}")))?;
            let new = NewUser {
                id: UserId::generate(),
                username: name.clone(),
                password_hash: hash,
                signing_key: SigningKey::generate(),
                created_at: to_micros(now),
            };
            let user = db.create_user(&new).await.map_err(|e| match e {
                DbError::Conflict => usage(format!("username `{name}` is taken")),
                other => other.into(),
            })?;
            if let Some(plan) = plan {
                db.set_plan(&user.id, &plan).await?;
            }
            Ok(format!("{}\t{}", user.id, user.username))
        }
        Tool::UserList => {
            let mut out = String::new();
            for u in db.users().await? {
                let _ = writeln!(out, "{}\t{}\t{}\t{}", u.id, u.username, u.plan, rfc3339(u.created_at));
            }
            Ok(out.trim_end().to_owned())
        }
        Tool::UserSetPlan { name, plan } => {
            let user = user_named(&db, &name).await?;
            db.set_plan(&user.id, &plan).await?;
            Ok(format!("{}\t{plan}", user.username))
        }
        Tool::UserDelete { name } => {
            let user = user_named(&db, &name).await?;
            let images = every_image(&db, &user.id).await?;
            db.delete_user(&user.id).await?;
            let store = storage::open(&config.storage).await.map_err(|e| ToolError::Backend(format!("store: {e}")))?;
            let keys = BlobKeys::new(&config.storage);
            let mut left = 0;
            for id in &images {
                let original = store.delete(&keys.original(id)).await;
                let variants = store.delete_prefix(&keys.variants_of(id)).await;
                left += usize::from(original.is_err() || variants.is_err());
            }
            let note = if left > 0 { format!("; {left} left for `imgedge sweep`") } else { String::new() };
            Ok(format!("deleted {} and {} images{note}", user.username, images.len()))
        }
        Tool::PresetsList { user } => {
            let user = user_named(&db, &user).await?;
            let mut out = String::new();
            for p in db.presets(&user.id).await? {
                let _ = writeln!(out, "{}\t{}\t{}", p.name, p.ops, if p.public { "public" } else { "private" });
            }
            Ok(out.trim_end().to_owned())
        }
    }
}

/// The `/i` path of `ops` on an image: canonical ops, a preset kept by name.
async fn variant_path(db: &Db, owner: &UserId, id: &ImageId, ops: &str, max: u32) -> Result<String, ToolError> {
    let bad = |e: transform::OpsError| ToolError::Usage(format!("ops: {e}"));
    let (preset, rest) = grammar::split_preset(ops).map_err(bad)?;
    let rest = transform::parse(&rest, max).map_err(bad)?;
    let ops = match preset {
        Some(name) if db.preset(owner, name).await?.is_none() => {
            return Err(ToolError::Usage(format!("ops: `p_{name}` is not a preset of this image's owner")));
        }
        Some(name) => grammar::with_preset(name, &rest),
        None => rest.to_string(),
    };
    Ok(if ops.is_empty() { format!("/i/{id}") } else { format!("/i/{id}/{ops}") })
}

async fn user_named(db: &Db, name: &str) -> Result<User, ToolError> {
    Ok(db.user_by_username(name).await?.ok_or_else(|| ToolError::Usage(format!("no user `{name}`")))?.0)
}

/// Ids of all of `owner`'s images.
async fn every_image(db: &Db, owner: &UserId) -> Result<Vec<ImageId>, ToolError> {
    let (mut ids, mut after) = (Vec::new(), None);
    loop {
        let page = db.list_images(owner, after.as_ref(), 500).await?;
        let Some(last) = page.last() else { return Ok(ids) };
        after = Some(db::PageAfter { created_at: last.created_at, id: last.id.clone() });
        ids.extend(page.into_iter().map(|i| i.id));
    }
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
        assert_eq!(sign, Some(Tool::Sign { key: "ab".into(), path: "/i/x/w_1".into(), expires_in: Some(60) }));
        assert_eq!(parse("user", &args("list")).unwrap(), Some(Tool::UserList));
        assert_eq!(parse("serve", &[]).unwrap(), None, "not a tool");
        assert_eq!(parse("sweep", &args("--grace-secs 0")).unwrap(), None, "its options are not ours");
        for (name, words) in [
            ("sign", "/i/x"),
            ("sign", "--key ab"),
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
