//! The SQL migrations in `migrations/<dialect>/`, embedded at build time.
//!
//! Each backend applies the ones not yet in its `schema_migrations` table, each in a
//! transaction together with its record, at start-up. Applying twice is a no-op.

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Ordering number, the file's numeric prefix.
    pub version: i64,
    /// File name, for the record and the log.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// The schema table both dialects share.
pub const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT   NOT NULL,
    applied_at TEXT   NOT NULL
)";

/// SQLite migrations, in order.
pub const SQLITE: &[Migration] = &[
    Migration { version: 1, name: "0001_init.sql", sql: include_str!("../../migrations/sqlite/0001_init.sql") },
    Migration {
        version: 2,
        name: "0002_byte_order_ids.sql",
        sql: include_str!("../../migrations/sqlite/0002_byte_order_ids.sql"),
    },
    Migration {
        version: 3,
        name: "0003_placeholders.sql",
        sql: include_str!("../../migrations/sqlite/0003_placeholders.sql"),
    },
    Migration { version: 4, name: "0004_presets.sql", sql: include_str!("../../migrations/sqlite/0004_presets.sql") },
    Migration { version: 5, name: "0005_frames.sql", sql: include_str!("../../migrations/sqlite/0005_frames.sql") },
    Migration {
        version: 6,
        name: "0006_public_images.sql",
        sql: include_str!("../../migrations/sqlite/0006_public_images.sql"),
    },
    Migration { version: 7, name: "0007_levels.sql", sql: include_str!("../../migrations/sqlite/0007_levels.sql") },
    Migration {
        version: 8,
        name: "0008_variant_purges.sql",
        sql: include_str!("../../migrations/sqlite/0008_variant_purges.sql"),
    },
    Migration {
        version: 9,
        name: "0009_variant_claims.sql",
        sql: include_str!("../../migrations/sqlite/0009_variant_claims.sql"),
    },
    Migration {
        version: 10,
        name: "0010_purge_queue.sql",
        sql: include_str!("../../migrations/sqlite/0010_purge_queue.sql"),
    },
    Migration {
        version: 11,
        name: "0011_lossless_copies.sql",
        sql: include_str!("../../migrations/sqlite/0011_lossless_copies.sql"),
    },
    Migration {
        version: 12,
        name: "0012_copies_bytes.sql",
        sql: include_str!("../../migrations/sqlite/0012_copies_bytes.sql"),
    },
];

/// PostgreSQL migrations, in order.
pub const POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "0001_init.sql", sql: include_str!("../../migrations/postgres/0001_init.sql") },
    Migration {
        version: 2,
        name: "0002_byte_order_ids.sql",
        sql: include_str!("../../migrations/postgres/0002_byte_order_ids.sql"),
    },
    Migration {
        version: 3,
        name: "0003_placeholders.sql",
        sql: include_str!("../../migrations/postgres/0003_placeholders.sql"),
    },
    Migration { version: 4, name: "0004_presets.sql", sql: include_str!("../../migrations/postgres/0004_presets.sql") },
    Migration { version: 5, name: "0005_frames.sql", sql: include_str!("../../migrations/postgres/0005_frames.sql") },
    Migration {
        version: 6,
        name: "0006_public_images.sql",
        sql: include_str!("../../migrations/postgres/0006_public_images.sql"),
    },
    Migration { version: 7, name: "0007_levels.sql", sql: include_str!("../../migrations/postgres/0007_levels.sql") },
    Migration {
        version: 8,
        name: "0008_variant_purges.sql",
        sql: include_str!("../../migrations/postgres/0008_variant_purges.sql"),
    },
    Migration {
        version: 9,
        name: "0009_variant_claims.sql",
        sql: include_str!("../../migrations/postgres/0009_variant_claims.sql"),
    },
    Migration {
        version: 10,
        name: "0010_purge_queue.sql",
        sql: include_str!("../../migrations/postgres/0010_purge_queue.sql"),
    },
    Migration {
        version: 11,
        name: "0011_lossless_copies.sql",
        sql: include_str!("../../migrations/postgres/0011_lossless_copies.sql"),
    },
    Migration {
        version: 12,
        name: "0012_copies_bytes.sql",
        sql: include_str!("../../migrations/postgres/0012_copies_bytes.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_have_the_same_versions_in_order() {
        let versions = |m: &[Migration]| m.iter().map(|m| m.version).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE), versions(POSTGRES));
        assert!(versions(SQLITE).windows(2).all(|w| w[0] < w[1]));
        for m in SQLITE.iter().chain(POSTGRES) {
            assert!(m.name.starts_with(&format!("{:04}_", m.version)), "{}", m.name);
        }
    }
}
