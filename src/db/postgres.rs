//! Production metadata: PostgreSQL through a bb8 pool with an explicit size and checkout timeout.

use std::time::Duration;

use async_trait::async_trait;
use bb8::{Pool, RunError};
use bb8_postgres::PostgresConnectionManager;
use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls;
use super::{
    corrupt, migrate, parse_format, parse_image_id, parse_user_id, placeholder_columns, placeholder_from, to_u32,
    to_u64, Claim, DbError, ImageRecord, Inspection, NewUser, OwnerKey, PageAfter, PoolState, Preset, QueuedPurge,
    Repository, Storage, User,
};
use crate::auth::SigningKey;
use crate::ids::{ImageId, UserId};

/// A pooled PostgreSQL database.
#[derive(Clone)]
pub struct PgRepo {
    pool: Pool<PostgresConnectionManager<MakeRustlsConnect>>,
}

/// Key of the advisory lock that serialises migrations across replicas starting together.
const MIGRATION_LOCK: i64 = 0x0069_6d67_6564_6765;

const USER_COLUMNS: &str = "id, username, plan, created_at, transform_count, transform_date";
const IMAGE_COLUMNS: &str =
    "id, owner_id, format, width, height, size_bytes, content_hash, has_alpha, created_at, thumbhash, blurhash, color, frames, public, levels, purges, copies_bytes";

impl PgRepo {
    /// Builds the pool, checks the server answers and applies pending migrations; `root_cert` is
    /// the default root certificate file for TLS (`PGSSLROOTCERT`; empty: the system's).
    ///
    /// # Errors
    /// The server cannot be reached within `timeout`, or a migration fails.
    pub async fn connect(url: &str, root_cert: &str, pool_size: u32, timeout: Duration) -> Result<Self, DbError> {
        let tls::Target { mut config, tls, .. } =
            tls::target(url, Some(root_cert)).map_err(|e| DbError::Unavailable(e.into()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("imgedge");
        }
        config.keepalives(true);
        let manager = PostgresConnectionManager::new(config, tls);
        let pool = Pool::builder()
            .max_size(pool_size)
            .connection_timeout(timeout)
            // A broken connection is noticed by the failing call and dropped; testing every
            // checkout would add a round trip to each quota charge.
            .test_on_check_out(false)
            .build_unchecked(manager);
        let repo = Self { pool };
        repo.migrate().await?;
        Ok(repo)
    }

    async fn migrate(&self) -> Result<(), DbError> {
        let mut conn = self.pool.get().await.map_err(pool)?;
        conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
        let result = async {
            conn.batch_execute(migrate::SCHEMA_TABLE).await.map_err(pg)?;
            for m in migrate::POSTGRES {
                let tx = conn.transaction().await.map_err(pg)?;
                let applied: bool = tx
                    .query_one("SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", &[&m.version])
                    .await
                    .map_err(pg)?
                    .get(0);
                if !applied {
                    tx.batch_execute(m.sql).await.map_err(pg)?;
                    tx.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                        &[&m.version, &m.name, &crate::clock::rfc3339(Utc::now())],
                    )
                    .await
                    .map_err(pg)?;
                    tracing::info!(migration = m.name, "applied PostgreSQL migration");
                }
                tx.commit().await.map_err(pg)?;
            }
            Ok(())
        }
        .await;
        conn.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
        result
    }
}

fn pg(e: tokio_postgres::Error) -> DbError {
    // SQLSTATE classes of a server that is going away or full: 08 connection exception,
    // 53 insufficient resources (too many connections), 57 operator intervention (shutdown,
    // restart, terminated backend). Retrying later, possibly on another connection, may work.
    let unavailable = e.code().is_some_and(|c| ["08", "53", "57"].iter().any(|class| c.code().starts_with(class)));
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        DbError::Conflict
    } else if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
        DbError::Orphan
    } else if unavailable || e.is_closed() || e.as_db_error().is_none() {
        DbError::Unavailable(e.into())
    } else {
        DbError::Backend(e.into())
    }
}

fn pool(e: RunError<tokio_postgres::Error>) -> DbError {
    match e {
        RunError::TimedOut => DbError::PoolTimeout,
        RunError::User(e) => pg(e),
    }
}

fn user_from(row: &Row) -> Result<User, DbError> {
    Ok(User {
        id: parse_user_id(row.try_get(0).map_err(pg)?)?,
        username: row.try_get(1).map_err(pg)?,
        plan: row.try_get(2).map_err(pg)?,
        created_at: row.try_get(3).map_err(pg)?,
        transform_count: to_u32(i64::from(row.try_get::<_, i32>(4).map_err(pg)?), "transform_count")?,
        transform_date: row.try_get(5).map_err(pg)?,
    })
}

fn image_from(row: &Row) -> Result<ImageRecord, DbError> {
    let size: i64 = row.try_get(5).map_err(pg)?;
    Ok(ImageRecord {
        id: parse_image_id(row.try_get(0).map_err(pg)?)?,
        owner: parse_user_id(row.try_get(1).map_err(pg)?)?,
        format: parse_format(row.try_get(2).map_err(pg)?)?,
        width: to_u32(i64::from(row.try_get::<_, i32>(3).map_err(pg)?), "width")?,
        height: to_u32(i64::from(row.try_get::<_, i32>(4).map_err(pg)?), "height")?,
        size_bytes: u64::try_from(size).map_err(|_| corrupt(format!("size {size}")))?,
        content_hash: row.try_get(6).map_err(pg)?,
        has_alpha: row.try_get(7).map_err(pg)?,
        created_at: row.try_get(8).map_err(pg)?,
        placeholder: placeholder_from((
            row.try_get(9).map_err(pg)?,
            row.try_get(10).map_err(pg)?,
            row.try_get(11).map_err(pg)?,
        )),
        frames: row.try_get::<_, Option<i32>>(12).map_err(pg)?.map(|n| to_u32(i64::from(n), "frames")).transpose()?,
        public: row.try_get(13).map_err(pg)?,
        levels: row.try_get::<_, Option<i32>>(14).map_err(pg)?.map(|n| to_u32(i64::from(n), "levels")).transpose()?,
        purges: to_u32(i64::from(row.try_get::<_, i32>(15).map_err(pg)?), "purges")?,
        copies_bytes: row.try_get::<_, Option<i64>>(16).map_err(pg)?.map(|n| to_u64(n, "copies_bytes")).transpose()?,
    })
}

const PRESET_COLUMNS: &str = "owner_id, name, ops, public, updated_at";

fn preset_from(row: &Row) -> Result<Preset, DbError> {
    Ok(Preset {
        owner: parse_user_id(row.try_get(0).map_err(pg)?)?,
        name: row.try_get(1).map_err(pg)?,
        ops: row.try_get(2).map_err(pg)?,
        public: row.try_get(3).map_err(pg)?,
        updated_at: row.try_get(4).map_err(pg)?,
    })
}

fn int(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl Repository for PgRepo {
    fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState { open: state.connections, in_use: state.connections.saturating_sub(state.idle_connections) }
    }

    async fn ping(&self) -> Result<(), DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        conn.simple_query("SELECT 1").await.map_err(pg)?;
        Ok(())
    }

    async fn create_user(&self, u: &NewUser) -> Result<User, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let row = conn
            .query_one(
                &format!(
                    "INSERT INTO users (id, username, password_hash, signing_key, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}"
                ),
                &[&u.id.as_str(), &u.username, &u.password_hash, &u.signing_key.as_bytes().as_slice(), &u.created_at],
            )
            .await
            .map_err(pg)?;
        user_from(&row)
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<(User, String)>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let row = conn
            .query_opt(
                &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(username) = lower($1)"),
                &[&username],
            )
            .await
            .map_err(pg)?;
        row.map(|r| Ok((user_from(&r)?, r.try_get(6).map_err(pg)?))).transpose()
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let row = conn
            .query_opt(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"), &[&id.as_str()])
            .await
            .map_err(pg)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn users(&self) -> Result<Vec<User>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let rows =
            conn.query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id"), &[]).await.map_err(pg)?;
        rows.iter().map(user_from).collect()
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        Ok(conn.execute("DELETE FROM users WHERE id = $1", &[&id.as_str()]).await.map_err(pg)? == 1)
    }

    async fn owner_key(&self, id: &UserId) -> Result<Option<OwnerKey>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let row =
            conn.query_opt("SELECT signing_key, plan FROM users WHERE id = $1", &[&id.as_str()]).await.map_err(pg)?;
        row.map(|r| {
            let bytes: &[u8] = r.try_get(0).map_err(pg)?;
            let key = SigningKey::from_bytes(bytes).ok_or_else(|| corrupt("signing key length"))?;
            Ok(OwnerKey { signing_key: key, plan: r.try_get(1).map_err(pg)? })
        })
        .transpose()
    }

    async fn set_signing_key(&self, id: &UserId, key: &SigningKey) -> Result<bool, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let n = conn
            .execute("UPDATE users SET signing_key = $2 WHERE id = $1", &[&id.as_str(), &key.as_bytes().as_slice()])
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn set_plan(&self, id: &UserId, plan: &str) -> Result<bool, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let n = conn.execute("UPDATE users SET plan = $2 WHERE id = $1", &[&id.as_str(), &plan]).await.map_err(pg)?;
        Ok(n == 1)
    }

    async fn insert_image(&self, i: &ImageRecord) -> Result<(), DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let size = i64::try_from(i.size_bytes).unwrap_or(i64::MAX);
        let (thumbhash, blurhash, color) = placeholder_columns(i.placeholder.as_ref());
        conn.execute(
            &format!(
                "INSERT INTO images ({IMAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
            ),
            &[
                &i.id.as_str(),
                &i.owner.as_str(),
                &i.format.as_str(),
                &int(i.width),
                &int(i.height),
                &size,
                &i.content_hash,
                &i.has_alpha,
                &i.created_at,
                &thumbhash,
                &blurhash,
                &color,
                &i.frames.map(int),
                &i.public,
                &i.levels.map(int),
                &int(i.purges),
                &i.copies_bytes.map(big),
            ],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn image(&self, id: &ImageId) -> Result<Option<ImageRecord>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let row = conn
            .query_opt(&format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = $1"), &[&id.as_str()])
            .await
            .map_err(pg)?;
        row.as_ref().map(image_from).transpose()
    }

    async fn storage(&self, owner: &UserId) -> Result<Storage, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let row = conn
            .query_one(
                "SELECT count(*), COALESCE(sum(size_bytes), 0)::BIGINT, COALESCE(sum(copies_bytes), 0)::BIGINT \
                 FROM images WHERE owner_id = $1",
                &[&owner.as_str()],
            )
            .await
            .map_err(pg)?;
        Ok(Storage {
            images: to_u64(row.try_get(0).map_err(pg)?, "count")?,
            original_bytes: to_u64(row.try_get(1).map_err(pg)?, "size_bytes")?,
            copies_bytes: to_u64(row.try_get(2).map_err(pg)?, "copies_bytes")?,
        })
    }

    async fn list_images(
        &self,
        owner: &UserId,
        after: Option<&PageAfter>,
        limit: u32,
    ) -> Result<Vec<ImageRecord>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let limit = i64::from(limit);
        let rows = match after {
            None => {
                conn.query(
                    &format!(
                        "SELECT {IMAGE_COLUMNS} FROM images WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
                    ),
                    &[&owner.as_str(), &limit],
                )
                .await
            }
            Some(a) => {
                conn.query(
                    &format!(
                        "SELECT {IMAGE_COLUMNS} FROM images WHERE owner_id = $1 AND (created_at, id) < ($2, $3) \
                         ORDER BY created_at DESC, id DESC LIMIT $4"
                    ),
                    &[&owner.as_str(), &a.created_at, &a.id.as_str(), &limit],
                )
                .await
            }
        }
        .map_err(pg)?;
        rows.iter().map(image_from).collect()
    }

    async fn delete_image(&self, id: &ImageId) -> Result<bool, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        Ok(conn.execute("DELETE FROM images WHERE id = $1", &[&id.as_str()]).await.map_err(pg)? == 1)
    }

    async fn charge_quota(&self, user: &UserId, today: NaiveDate, limit: u32) -> Result<Option<u32>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let row = conn
            .query_opt(
                "UPDATE users SET \
                   transform_count = CASE WHEN transform_date = $2 THEN transform_count + 1 ELSE 1 END, \
                   transform_date = $2 \
                 WHERE id = $1 AND $3 > 0 AND (transform_date IS DISTINCT FROM $2 OR transform_count < $3) \
                 RETURNING transform_count",
                &[&user.as_str(), &today, &int(limit)],
            )
            .await
            .map_err(pg)?;
        row.map(|r| to_u32(i64::from(r.try_get::<_, i32>(0).map_err(pg)?), "transform_count")).transpose()
    }

    async fn refund_quota(&self, user: &UserId, today: NaiveDate) -> Result<(), DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        conn.execute(
            "UPDATE users SET transform_count = transform_count - 1 \
             WHERE id = $1 AND transform_date = $2 AND transform_count > 0",
            &[&user.as_str(), &today],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn set_image_public(&self, id: &ImageId, public: bool) -> Result<bool, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let n =
            conn.execute("UPDATE images SET public = $2 WHERE id = $1", &[&id.as_str(), &public]).await.map_err(pg)?;
        Ok(n == 1)
    }

    async fn purge_variants(&self, id: &ImageId) -> Result<Option<u32>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let row = conn
            .query_opt("UPDATE images SET purges = purges + 1 WHERE id = $1 RETURNING purges", &[&id.as_str()])
            .await
            .map_err(pg)?;
        row.map(|r| to_u32(i64::from(r.try_get::<_, i32>(0).map_err(pg)?), "purges")).transpose()
    }

    async fn image_ids(&self) -> Result<Vec<ImageId>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let rows = conn.query("SELECT id FROM images", &[]).await.map_err(pg)?;
        rows.iter().map(|r| parse_image_id(r.try_get(0).map_err(pg)?)).collect()
    }

    async fn put_preset(&self, p: &Preset, max: u32) -> Result<bool, DbError> {
        let mut conn = self.pool.get().await.map_err(pool)?;
        let tx = conn.transaction().await.map_err(pg)?;
        // The owner's row is the lock: concurrent writes of new names count one after another,
        // each in a statement that sees the others' committed rows.
        tx.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&p.owner.as_str()]).await.map_err(pg)?;
        let n = tx
            .execute(
                "INSERT INTO presets (owner_id, name, ops, public, updated_at) \
                 SELECT $1, $2, $3, $4, $5 \
                 WHERE EXISTS (SELECT 1 FROM presets WHERE owner_id = $1 AND name = $2) \
                    OR (SELECT COUNT(*) FROM presets WHERE owner_id = $1) < $6 \
                 ON CONFLICT (owner_id, name) DO UPDATE SET ops = excluded.ops, public = excluded.public, \
                 updated_at = excluded.updated_at",
                &[&p.owner.as_str(), &p.name, &p.ops, &p.public, &p.updated_at, &i64::from(max)],
            )
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(n == 1)
    }

    async fn preset(&self, owner: &UserId, name: &str) -> Result<Option<Preset>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let sql = format!("SELECT {PRESET_COLUMNS} FROM presets WHERE owner_id = $1 AND name = $2");
        let row = conn.query_opt(&sql, &[&owner.as_str(), &name]).await.map_err(pg)?;
        row.as_ref().map(preset_from).transpose()
    }

    async fn presets(&self, owner: &UserId, after: Option<&str>, limit: u32) -> Result<Vec<Preset>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let sql =
            format!("SELECT {PRESET_COLUMNS} FROM presets WHERE owner_id = $1 AND name > $2 ORDER BY name LIMIT $3");
        let after = after.unwrap_or_default();
        let rows = conn.query(&sql, &[&owner.as_str(), &after, &i64::from(limit)]).await.map_err(pg)?;
        rows.iter().map(preset_from).collect()
    }

    async fn delete_preset(&self, owner: &UserId, name: &str) -> Result<bool, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let sql = "DELETE FROM presets WHERE owner_id = $1 AND name = $2";
        Ok(conn.execute(sql, &[&owner.as_str(), &name]).await.map_err(pg)? == 1)
    }

    async fn queue_purge(&self, tags: &str, now_ms: i64) -> Result<(), DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let sql = "INSERT INTO purge_queue (tags, created_ms, next_attempt_ms) VALUES ($1, $2, $2)";
        conn.execute(sql, &[&tags, &now_ms]).await.map_err(pg)?;
        Ok(())
    }

    async fn take_purges(&self, now_ms: i64, until_ms: i64, limit: u32) -> Result<Vec<QueuedPurge>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        // SKIP LOCKED: replicas sending at once take different rows.
        let rows = conn
            .query(
                "UPDATE purge_queue SET next_attempt_ms = $2 WHERE id IN ( \
                   SELECT id FROM purge_queue WHERE next_attempt_ms <= $1 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, tags, created_ms, attempts",
                &[&now_ms, &until_ms, &i64::from(limit)],
            )
            .await
            .map_err(pg)?;
        let mut purges = rows
            .iter()
            .map(|r| {
                Ok(QueuedPurge {
                    id: r.try_get(0).map_err(pg)?,
                    tags: r.try_get(1).map_err(pg)?,
                    created_ms: r.try_get(2).map_err(pg)?,
                    attempts: to_u32(i64::from(r.try_get::<_, i32>(3).map_err(pg)?), "attempts")?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        purges.sort_by_key(|p| p.id);
        Ok(purges)
    }

    async fn purges_done(&self, ids: &[i64]) -> Result<(), DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        conn.execute("DELETE FROM purge_queue WHERE id = ANY($1)", &[&ids]).await.map_err(pg)?;
        Ok(())
    }

    async fn purges_failed(&self, ids: &[i64], next_ms: i64) -> Result<(), DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let sql = "UPDATE purge_queue SET attempts = attempts + 1, next_attempt_ms = $2 WHERE id = ANY($1)";
        conn.execute(sql, &[&ids, &next_ms]).await.map_err(pg)?;
        Ok(())
    }

    fn shared_by_replicas(&self) -> bool {
        true
    }

    async fn claim_variant(&self, key: &str, holder: &str, lease: Duration) -> Result<Claim, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        // An insert, or an update of a row whose lease ran out (`xmax` is set on an update):
        // no row back means another holder's lease is running. `charged_on` survives a take-over.
        let row = conn
            .query_opt(
                "INSERT INTO variant_claims (variant_key, holder, expires_at) \
                 VALUES ($1, $2, now() + make_interval(secs => $3)) \
                 ON CONFLICT (variant_key) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
                   WHERE variant_claims.expires_at < now() \
                 RETURNING xmax <> '0'::xid AS taken_over, charged_on",
                &[&key, &holder, &lease.as_secs_f64()],
            )
            .await
            .map_err(pg)?;
        Ok(match row {
            Some(row) => {
                Claim::Won { taken_over: row.try_get(0).map_err(pg)?, charged_on: row.try_get(1).map_err(pg)? }
            }
            None => Claim::Held,
        })
    }

    async fn renew_claim(&self, key: &str, holder: &str, lease: Duration) -> Result<bool, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let n = conn
            .execute(
                "UPDATE variant_claims SET expires_at = now() + make_interval(secs => $3) \
                 WHERE variant_key = $1 AND holder = $2",
                &[&key, &holder, &lease.as_secs_f64()],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn claim_charged(&self, key: &str, holder: &str, day: NaiveDate) -> Result<(), DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let sql = "UPDATE variant_claims SET charged_on = $3 WHERE variant_key = $1 AND holder = $2";
        conn.execute(sql, &[&key, &holder, &day]).await.map_err(pg)?;
        Ok(())
    }

    async fn release_claim(&self, key: &str, holder: &str) -> Result<(), DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let sql = "DELETE FROM variant_claims WHERE variant_key = $1 AND holder = $2";
        conn.execute(sql, &[&key, &holder]).await.map_err(pg)?;
        Ok(())
    }

    async fn forget_expired_claims(&self, before: DateTime<Utc>) -> Result<u64, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        conn.execute("DELETE FROM variant_claims WHERE expires_at < $1", &[&before]).await.map_err(pg)
    }

    async fn images_to_backfill(&self, limit: u32) -> Result<Vec<ImageRecord>, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE {} LIMIT $1", super::BACKFILL_WHERE.as_str());
        let rows = conn.query(&sql, &[&i64::from(limit)]).await.map_err(pg)?;
        rows.iter().map(image_from).collect()
    }

    async fn set_inspection(&self, id: &ImageId, i: &Inspection) -> Result<bool, DbError> {
        let conn = self.pool.get().await.map_err(pool)?;
        let p = &i.placeholder;
        let n = conn
            .execute(
                "UPDATE images SET thumbhash = $2, blurhash = $3, color = $4, frames = $5, levels = $6, copies_bytes = $7 \
                 WHERE id = $1",
                &[&id.as_str(), &p.thumbhash, &p.blurhash, &p.color, &int(i.frames), &int(i.levels), &big(i.copies_bytes)],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }
}
