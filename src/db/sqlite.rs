//! The embedded default: one SQLite file (WAL), driven by rusqlite on the blocking pool so the
//! async threads never wait on disk.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    corrupt, migrate, parse_format, parse_image_id, parse_user_id, placeholder_columns, placeholder_from, to_u32,
    to_u64, DbError, ImageRecord, Inspection, NewUser, OwnerKey, PageAfter, PoolState, Preset, QueuedPurge, Repository,
    Storage, User,
};
use crate::auth::SigningKey;
use crate::ids::{ImageId, UserId};

/// A SQLite database file.
#[derive(Clone)]
pub struct SqliteRepo {
    conn: Arc<Mutex<Connection>>,
    /// Calls running or waiting for the connection.
    calls: Arc<AtomicU32>,
}

const USER_COLUMNS: &str = "id, username, plan, created_at, transform_count, transform_date";
const IMAGE_COLUMNS: &str =
    "id, owner_id, format, width, height, size_bytes, content_hash, has_alpha, created_at, thumbhash, blurhash, color, frames, public, levels, purges, copies_bytes";

impl SqliteRepo {
    /// Opens (creating if needed) the database file and applies migrations.
    ///
    /// # Errors
    /// The file cannot be created or opened, or a migration fails.
    pub async fn open(path: &Path) -> Result<Self, DbError> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, DbError> {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| DbError::Unavailable(e.into()))?;
            }
            let mut conn = Connection::open(&path).map_err(|e| DbError::Unavailable(e.into()))?;
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
            )
            .map_err(backend)?;
            apply_migrations(&mut conn)?;
            Ok(conn)
        })
        .await
        .map_err(|e| DbError::Backend(e.into()))??;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), calls: Arc::default() })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn call<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, DbError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let counted = Counted::new(&self.calls);
        tokio::task::spawn_blocking(move || {
            let _counted = counted;
            // A panic while holding the lock cannot leave SQLite half-written (statements are
            // atomic), so a poisoned lock is still safe to use.
            let mut guard = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| DbError::Backend(e.into()))?
    }
}

fn apply_migrations(conn: &mut Connection) -> Result<(), DbError> {
    conn.execute_batch(migrate::SCHEMA_TABLE).map_err(backend)?;
    for m in migrate::SQLITE {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(backend)?;
        let applied: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)", [m.version], |r| r.get(0))
            .map_err(backend)?;
        if !applied {
            tx.execute_batch(m.sql).map_err(backend)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                params![m.version, m.name, crate::clock::rfc3339(Utc::now())],
            )
            .map_err(backend)?;
            tracing::info!(migration = m.name, "applied SQLite migration");
        }
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

/// `SQLITE_CONSTRAINT_FOREIGNKEY`.
const FOREIGN_KEY: std::ffi::c_int = 787;

fn backend(e: rusqlite::Error) -> DbError {
    if let rusqlite::Error::SqliteFailure(failure, _) = &e {
        if failure.extended_code == FOREIGN_KEY {
            return DbError::Orphan;
        }
    }
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => DbError::Conflict,
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => DbError::PoolTimeout,
        _ => DbError::Backend(e.into()),
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(v: i64) -> Result<DateTime<Utc>, DbError> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| corrupt(format!("timestamp {v}")))
}

/// A row in `USER_COLUMNS` order, with raw values checked after the rusqlite call.
type RawUser = (String, String, String, i64, i64, Option<String>);

fn raw_user(row: &Row<'_>) -> rusqlite::Result<RawUser> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
}

fn user_from(raw: RawUser) -> Result<User, DbError> {
    let (id, username, plan, created_at, count, date) = raw;
    let transform_date = date
        .map(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| corrupt(format!("date {d:?}"))))
        .transpose()?;
    Ok(User {
        id: parse_user_id(&id)?,
        username,
        plan,
        created_at: from_micros(created_at)?,
        transform_count: to_u32(count, "transform_count")?,
        transform_date,
    })
}

/// One call in [`SqliteRepo::calls`] while it lives (dropped with the closure even if the
/// blocking pool never runs it).
struct Counted(Arc<AtomicU32>);

impl Counted {
    fn new(calls: &Arc<AtomicU32>) -> Self {
        calls.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(calls))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

const PRESET_COLUMNS: &str = "owner_id, name, ops, public, updated_at";

type RawPreset = (String, String, String, bool, i64);

fn raw_preset(row: &Row<'_>) -> rusqlite::Result<RawPreset> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn preset_from((owner, name, ops, public, updated_at): RawPreset) -> Result<Preset, DbError> {
    Ok(Preset { owner: parse_user_id(&owner)?, name, ops, public, updated_at: from_micros(updated_at)? })
}

type RawImage = (
    String,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    bool,
    i64,
    Placeholders,
    Option<i64>,
    bool,
    Option<i64>,
    i64,
    Option<i64>,
);
type Placeholders = (Option<String>, Option<String>, Option<String>);

fn raw_image(row: &Row<'_>) -> rusqlite::Result<RawImage> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        (row.get(9)?, row.get(10)?, row.get(11)?),
        row.get(12)?,
        row.get(13)?,
        row.get(14)?,
        row.get(15)?,
        row.get(16)?,
    ))
}

fn image_from(raw: RawImage) -> Result<ImageRecord, DbError> {
    let (
        id,
        owner,
        format,
        width,
        height,
        size,
        hash,
        has_alpha,
        created_at,
        placeholders,
        frames,
        public,
        levels,
        purges,
        copies_bytes,
    ) = raw;
    Ok(ImageRecord {
        id: parse_image_id(&id)?,
        owner: parse_user_id(&owner)?,
        format: parse_format(&format)?,
        width: to_u32(width, "width")?,
        height: to_u32(height, "height")?,
        size_bytes: u64::try_from(size).map_err(|_| corrupt(format!("size {size}")))?,
        content_hash: hash,
        has_alpha,
        created_at: from_micros(created_at)?,
        placeholder: placeholder_from(placeholders),
        frames: frames.map(|n| to_u32(n, "frames")).transpose()?,
        public,
        levels: levels.map(|n| to_u32(n, "levels")).transpose()?,
        purges: to_u32(purges, "purges")?,
        copies_bytes: copies_bytes.map(|n| to_u64(n, "copies_bytes")).transpose()?,
    })
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

#[async_trait]
impl Repository for SqliteRepo {
    fn pool_state(&self) -> PoolState {
        PoolState { open: 1, in_use: self.calls.load(Ordering::Relaxed) }
    }

    async fn ping(&self) -> Result<(), DbError> {
        self.call(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(backend)).await
    }

    async fn create_user(&self, user: &NewUser) -> Result<User, DbError> {
        let u = user.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO users (id, username, password_hash, signing_key, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    u.id.as_str(),
                    u.username,
                    u.password_hash,
                    u.signing_key.as_bytes().as_slice(),
                    micros(u.created_at)
                ],
            )
            .map_err(backend)?;
            Ok(User {
                id: u.id,
                username: u.username,
                plan: "free".into(),
                created_at: u.created_at,
                transform_count: 0,
                transform_date: None,
            })
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<(User, String)>, DbError> {
        let username = username.to_owned();
        self.call(move |c| {
            let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?1");
            let row = c
                .query_row(&sql, [username], |r| Ok((raw_user(r)?, r.get::<_, String>(6)?)))
                .optional()
                .map_err(backend)?;
            row.map(|(raw, hash)| Ok((user_from(raw)?, hash))).transpose()
        })
        .await
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, DbError> {
        let id = id.clone();
        self.call(move |c| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
            c.query_row(&sql, [id.as_str()], raw_user).optional().map_err(backend)?.map(user_from).transpose()
        })
        .await
    }

    async fn users(&self) -> Result<Vec<User>, DbError> {
        self.call(|c| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id");
            let mut stmt = c.prepare(&sql).map_err(backend)?;
            let rows = stmt.query_map([], raw_user).map_err(backend)?;
            rows.map(|r| user_from(r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, DbError> {
        let id = id.clone();
        self.call(move |c| Ok(c.execute("DELETE FROM users WHERE id = ?1", [id.as_str()]).map_err(backend)? == 1)).await
    }

    async fn owner_key(&self, id: &UserId) -> Result<Option<OwnerKey>, DbError> {
        let id = id.clone();
        self.call(move |c| {
            let row: Option<(Vec<u8>, String)> = c
                .query_row("SELECT signing_key, plan FROM users WHERE id = ?1", [id.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(backend)?;
            row.map(|(bytes, plan)| {
                let key = SigningKey::from_bytes(&bytes).ok_or_else(|| corrupt("signing key length"))?;
                Ok(OwnerKey { signing_key: key, plan })
            })
            .transpose()
        })
        .await
    }

    async fn set_signing_key(&self, id: &UserId, key: &SigningKey) -> Result<bool, DbError> {
        let (id, key) = (id.clone(), key.clone());
        self.call(move |c| {
            let n = c
                .execute(
                    "UPDATE users SET signing_key = ?2 WHERE id = ?1",
                    params![id.as_str(), key.as_bytes().as_slice()],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn set_plan(&self, id: &UserId, plan: &str) -> Result<bool, DbError> {
        let (id, plan) = (id.clone(), plan.to_owned());
        self.call(move |c| {
            let n =
                c.execute("UPDATE users SET plan = ?2 WHERE id = ?1", params![id.as_str(), plan]).map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn insert_image(&self, image: &ImageRecord) -> Result<(), DbError> {
        let i = image.clone();
        self.call(move |c| {
            let (thumbhash, blurhash, color) = placeholder_columns(i.placeholder.as_ref());
            c.execute(
                &format!(
                    "INSERT INTO images ({IMAGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
                ),
                params![
                    i.id.as_str(),
                    i.owner.as_str(),
                    i.format.as_str(),
                    i.width,
                    i.height,
                    i64::try_from(i.size_bytes).unwrap_or(i64::MAX),
                    i.content_hash,
                    i.has_alpha,
                    micros(i.created_at),
                    thumbhash,
                    blurhash,
                    color,
                    i.frames,
                    i.public,
                    i.levels,
                    i.purges,
                    i.copies_bytes.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn image(&self, id: &ImageId) -> Result<Option<ImageRecord>, DbError> {
        let id = id.clone();
        self.call(move |c| {
            let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = ?1");
            c.query_row(&sql, [id.as_str()], raw_image).optional().map_err(backend)?.map(image_from).transpose()
        })
        .await
    }

    async fn storage(&self, owner: &UserId) -> Result<Storage, DbError> {
        let owner = owner.clone();
        self.call(move |c| {
            let sql = "SELECT count(*), COALESCE(sum(size_bytes), 0), COALESCE(sum(copies_bytes), 0) \
                       FROM images WHERE owner_id = ?1";
            let (images, original_bytes, copies_bytes): (i64, i64, i64) =
                c.query_row(sql, [owner.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(backend)?;
            Ok(Storage {
                images: to_u64(images, "count")?,
                original_bytes: to_u64(original_bytes, "size_bytes")?,
                copies_bytes: to_u64(copies_bytes, "copies_bytes")?,
            })
        })
        .await
    }

    async fn list_images(
        &self,
        owner: &UserId,
        after: Option<&PageAfter>,
        limit: u32,
    ) -> Result<Vec<ImageRecord>, DbError> {
        let owner = owner.clone();
        let after = after.map(|a| (micros(a.created_at), a.id.as_str().to_owned()));
        self.call(move |c| {
            let rows = match after {
                None => {
                    let sql = format!(
                        "SELECT {IMAGE_COLUMNS} FROM images WHERE owner_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2"
                    );
                    let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
                    let rows = stmt.query_map(params![owner.as_str(), limit], raw_image).map_err(backend)?;
                    rows.collect::<Result<Vec<_>, _>>().map_err(backend)?
                }
                Some((ts, id)) => {
                    let sql = format!(
                        "SELECT {IMAGE_COLUMNS} FROM images WHERE owner_id = ?1 AND (created_at < ?2 OR (created_at = ?2 AND id < ?3)) \
                         ORDER BY created_at DESC, id DESC LIMIT ?4"
                    );
                    let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
                    let rows = stmt.query_map(params![owner.as_str(), ts, id, limit], raw_image).map_err(backend)?;
                    rows.collect::<Result<Vec<_>, _>>().map_err(backend)?
                }
            };
            rows.into_iter().map(image_from).collect()
        })
        .await
    }

    async fn delete_image(&self, id: &ImageId) -> Result<bool, DbError> {
        let id = id.clone();
        self.call(move |c| Ok(c.execute("DELETE FROM images WHERE id = ?1", [id.as_str()]).map_err(backend)? == 1))
            .await
    }

    async fn set_image_public(&self, id: &ImageId, public: bool) -> Result<bool, DbError> {
        let id = id.clone();
        self.call(move |c| {
            let n = c
                .execute("UPDATE images SET public = ?2 WHERE id = ?1", params![id.as_str(), public])
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn purge_variants(&self, id: &ImageId) -> Result<Option<u32>, DbError> {
        let id = id.clone();
        self.call(move |c| {
            let purges: Option<i64> = c
                .query_row("UPDATE images SET purges = purges + 1 WHERE id = ?1 RETURNING purges", [id.as_str()], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?;
            purges.map(|n| to_u32(n, "purges")).transpose()
        })
        .await
    }

    async fn charge_quota(&self, user: &UserId, today: NaiveDate, limit: u32) -> Result<Option<u32>, DbError> {
        let (user, today) = (user.clone(), day(today));
        self.call(move |c| {
            let count: Option<i64> = c
                .query_row(
                    "UPDATE users SET \
                       transform_count = CASE WHEN transform_date = ?2 THEN transform_count + 1 ELSE 1 END, \
                       transform_date = ?2 \
                     WHERE id = ?1 AND ?3 > 0 AND (transform_date IS NOT ?2 OR transform_count < ?3) \
                     RETURNING transform_count",
                    params![user.as_str(), today, limit],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            count.map(|n| to_u32(n, "transform_count")).transpose()
        })
        .await
    }

    async fn refund_quota(&self, user: &UserId, today: NaiveDate) -> Result<(), DbError> {
        let (user, today) = (user.clone(), day(today));
        self.call(move |c| {
            c.execute(
                "UPDATE users SET transform_count = transform_count - 1 \
                 WHERE id = ?1 AND transform_date = ?2 AND transform_count > 0",
                params![user.as_str(), today],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn image_ids(&self) -> Result<Vec<ImageId>, DbError> {
        self.call(|c| {
            let mut stmt = c.prepare("SELECT id FROM images").map_err(backend)?;
            let ids = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(backend)?;
            ids.map(|id| parse_image_id(&id.map_err(backend)?)).collect()
        })
        .await
    }

    async fn put_preset(&self, preset: &Preset, max: u32) -> Result<bool, DbError> {
        let p = preset.clone();
        // One connection: the count and the insert cannot interleave with another write.
        self.call(move |c| {
            let n = c
                .execute(
                    "INSERT INTO presets (owner_id, name, ops, public, updated_at) \
                     SELECT ?1, ?2, ?3, ?4, ?5 \
                     WHERE EXISTS (SELECT 1 FROM presets WHERE owner_id = ?1 AND name = ?2) \
                        OR (SELECT COUNT(*) FROM presets WHERE owner_id = ?1) < ?6 \
                     ON CONFLICT (owner_id, name) DO UPDATE SET ops = excluded.ops, public = excluded.public, \
                     updated_at = excluded.updated_at",
                    params![p.owner.as_str(), p.name, p.ops, p.public, micros(p.updated_at), max],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn preset(&self, owner: &UserId, name: &str) -> Result<Option<Preset>, DbError> {
        let (owner, name) = (owner.clone(), name.to_owned());
        self.call(move |c| {
            let sql = format!("SELECT {PRESET_COLUMNS} FROM presets WHERE owner_id = ?1 AND name = ?2");
            let raw = c.query_row(&sql, params![owner.as_str(), name], raw_preset).optional().map_err(backend)?;
            raw.map(preset_from).transpose()
        })
        .await
    }

    async fn presets(&self, owner: &UserId, after: Option<&str>, limit: u32) -> Result<Vec<Preset>, DbError> {
        let (owner, after) = (owner.clone(), after.unwrap_or_default().to_owned());
        self.call(move |c| {
            let sql = format!(
                "SELECT {PRESET_COLUMNS} FROM presets WHERE owner_id = ?1 AND name > ?2 ORDER BY name LIMIT ?3"
            );
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt.query_map(params![owner.as_str(), after, limit], raw_preset).map_err(backend)?;
            rows.map(|r| preset_from(r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn delete_preset(&self, owner: &UserId, name: &str) -> Result<bool, DbError> {
        let (owner, name) = (owner.clone(), name.to_owned());
        self.call(move |c| {
            let n = c
                .execute("DELETE FROM presets WHERE owner_id = ?1 AND name = ?2", params![owner.as_str(), name])
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn queue_purge(&self, tags: &str, now_ms: i64) -> Result<(), DbError> {
        let tags = tags.to_owned();
        self.call(move |c| {
            let sql = "INSERT INTO purge_queue (tags, created_ms, next_attempt_ms) VALUES (?1, ?2, ?2)";
            c.execute(sql, params![tags, now_ms]).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_purges(&self, now_ms: i64, until_ms: i64, limit: u32) -> Result<Vec<QueuedPurge>, DbError> {
        self.call(move |c| {
            let mut stmt = c
                .prepare(
                    "UPDATE purge_queue SET next_attempt_ms = ?2 WHERE id IN ( \
                       SELECT id FROM purge_queue WHERE next_attempt_ms <= ?1 ORDER BY id LIMIT ?3) \
                     RETURNING id, tags, created_ms, attempts",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![now_ms, until_ms, limit], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
                })
                .map_err(backend)?;
            let mut purges = Vec::new();
            for row in rows {
                let (id, tags, created_ms, attempts) = row.map_err(backend)?;
                purges.push(QueuedPurge { id, tags, created_ms, attempts: to_u32(attempts, "attempts")? });
            }
            purges.sort_by_key(|p| p.id);
            Ok(purges)
        })
        .await
    }

    async fn purges_done(&self, ids: &[i64]) -> Result<(), DbError> {
        let ids = ids.to_vec();
        self.call(move |c| {
            let tx = c.transaction().map_err(backend)?;
            for id in ids {
                tx.execute("DELETE FROM purge_queue WHERE id = ?1", params![id]).map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn purges_failed(&self, ids: &[i64], next_ms: i64) -> Result<(), DbError> {
        let ids = ids.to_vec();
        self.call(move |c| {
            let tx = c.transaction().map_err(backend)?;
            for id in ids {
                let sql = "UPDATE purge_queue SET attempts = attempts + 1, next_attempt_ms = ?2 WHERE id = ?1";
                tx.execute(sql, params![id, next_ms]).map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn images_to_backfill(&self, limit: u32) -> Result<Vec<ImageRecord>, DbError> {
        self.call(move |c| {
            let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE {} LIMIT ?1", super::BACKFILL_WHERE.as_str());
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt.query_map([limit], raw_image).map_err(backend)?;
            rows.map(|r| image_from(r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn set_inspection(&self, id: &ImageId, inspection: &Inspection) -> Result<bool, DbError> {
        let (id, i) = (id.clone(), inspection.clone());
        self.call(move |c| {
            let p = &i.placeholder;
            let n = c
                .execute(
                    "UPDATE images SET thumbhash = ?2, blurhash = ?3, color = ?4, frames = ?5, levels = ?6, \
                     copies_bytes = ?7 WHERE id = ?1",
                    params![
                        id.as_str(),
                        p.thumbhash,
                        p.blurhash,
                        p.color,
                        i.frames,
                        i.levels,
                        i64::try_from(i.copies_bytes).unwrap_or(i64::MAX)
                    ],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }
}
