//! The repository contract, written once and run on SQLite and PostgreSQL.

use chrono::{Duration, NaiveDate, Utc};
use imgedge::auth::SigningKey;
use imgedge::db::{self, DbError, ImageRecord, NewUser, PageAfter, Preset, Repository};
use imgedge::format::ImageFormat;
use imgedge::ids::{ImageId, UserId};
use imgedge::placeholder::Placeholder;

use crate::harness::{Backend, Env};

fn new_user(name: &str) -> NewUser {
    NewUser {
        id: UserId::generate(),
        username: name.to_owned(),
        password_hash: "$argon2id$x".to_owned(),
        signing_key: SigningKey::generate(),
        created_at: db::to_micros(Utc::now()),
    }
}

fn image(owner: &UserId, created_at: chrono::DateTime<Utc>) -> ImageRecord {
    ImageRecord {
        id: ImageId::generate(),
        owner: owner.clone(),
        format: ImageFormat::Webp,
        width: 3,
        height: 4,
        size_bytes: 99,
        content_hash: "ab".repeat(32),
        has_alpha: true,
        placeholder: Some(Placeholder {
            thumbhash: "1QcSHQRnh493V4dIh4eXh1h4kJUI".to_owned(),
            blurhash: "LEHV6nWB2yk8pyo0adR*.7kCMdnj".to_owned(),
            color: "#102030".to_owned(),
        }),
        frames: Some(7),
        public: false,
        levels: Some(0),
        copies_bytes: Some(0),
        purges: 0,
        created_at: db::to_micros(created_at),
    }
}

async fn repository(backend: Backend) -> (Env, db::Db) {
    let env = Env::new(backend).await;
    let repo = db::connect(&env.config().database).await.expect("connect");
    (env, repo)
}

async fn users_keys_and_conflicts(repo: &dyn Repository) {
    let alice = repo.create_user(&new_user("Alice")).await.unwrap();
    assert_eq!((alice.plan.as_str(), alice.transform_count, alice.transform_date), ("free", 0, None));
    assert!(matches!(repo.create_user(&new_user("alice")).await, Err(DbError::Conflict)));
    let (found, hash) = repo.user_by_username("ALICE").await.unwrap().unwrap();
    assert_eq!(found, alice);
    assert_eq!(hash, "$argon2id$x");
    assert_eq!(repo.user(&alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(repo.user(&UserId::generate()).await.unwrap(), None);
    let key = SigningKey::generate();
    assert!(repo.set_signing_key(&alice.id, &key).await.unwrap());
    assert_eq!(repo.owner_key(&alice.id).await.unwrap().unwrap().signing_key, key);
    assert!(!repo.set_signing_key(&UserId::generate(), &key).await.unwrap());
    assert!(repo.set_plan(&alice.id, "pro").await.unwrap());
    assert_eq!(repo.user(&alice.id).await.unwrap().unwrap().plan, "pro");
    assert_eq!(repo.owner_key(&alice.id).await.unwrap().unwrap().plan, "pro");
    assert!(!repo.set_plan(&UserId::generate(), "pro").await.unwrap());
}

async fn images_page_newest_first(repo: &dyn Repository) {
    let owner = repo.create_user(&new_user("owner")).await.unwrap();
    let other = repo.create_user(&new_user("other")).await.unwrap();
    let t = Utc::now();
    // Three share a timestamp: the id breaks the tie, byte by byte on every database (a
    // linguistic collation would put "a…" before "B…"), so paging never skips or repeats.
    let tied = |id: &str| ImageRecord { id: ImageId::parse(id).unwrap(), ..image(&owner.id, t) };
    let mut made = vec![
        image(&owner.id, t - Duration::seconds(2)),
        tied("aAAAAAAAAAAAAAAAAAAAAA"),
        tied("BAAAAAAAAAAAAAAAAAAAAA"),
        tied("_AAAAAAAAAAAAAAAAAAAAA"),
        image(&owner.id, t + Duration::seconds(1)),
    ];
    for i in &made {
        repo.insert_image(i).await.unwrap();
    }
    repo.insert_image(&image(&other.id, t)).await.unwrap();
    made.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let mut seen = Vec::new();
    let mut after: Option<PageAfter> = None;
    loop {
        let page = repo.list_images(&owner.id, after.as_ref(), 1).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(PageAfter { created_at: last.created_at, id: last.id.clone() });
        seen.extend(page);
    }
    assert_eq!(seen, made);
    assert_eq!(repo.image(&made[0].id).await.unwrap(), Some(made[0].clone()));
    // Published and un-published; the rest of the row stays.
    assert!(repo.set_image_public(&made[1].id, true).await.unwrap());
    assert_eq!(repo.image(&made[1].id).await.unwrap(), Some(ImageRecord { public: true, ..made[1].clone() }));
    assert!(repo.set_image_public(&made[1].id, false).await.unwrap());
    assert_eq!(repo.image(&made[1].id).await.unwrap(), Some(made[1].clone()));
    assert!(!repo.set_image_public(&ImageId::generate(), true).await.unwrap());
    assert!(repo.delete_image(&made[0].id).await.unwrap());
    assert!(!repo.delete_image(&made[0].id).await.unwrap());
    assert_eq!(repo.image(&made[0].id).await.unwrap(), None);
    assert_eq!(repo.image_ids().await.unwrap().len(), 5);
}

async fn placeholders_are_stored_and_backfilled(repo: &dyn Repository) {
    let owner = repo.create_user(&new_user("placeholders")).await.unwrap();
    let old = ImageRecord { placeholder: None, ..image(&owner.id, Utc::now()) };
    let uncounted = ImageRecord { frames: None, ..image(&owner.id, Utc::now()) };
    let uncopied = ImageRecord { levels: None, ..image(&owner.id, Utc::now()) };
    // Copies at 1/2 and 1/4 only: made before the one at 1/3.
    let earlier = ImageRecord { levels: Some(0b10100), ..image(&owner.id, Utc::now()) };
    // Copies whose bytes were never counted.
    let unmeasured = ImageRecord { levels: Some(0b11100), copies_bytes: None, ..image(&owner.id, Utc::now()) };
    let new = image(&owner.id, Utc::now());
    for record in [&old, &uncounted, &uncopied, &earlier, &unmeasured, &new] {
        repo.insert_image(record).await.unwrap();
    }
    let stored = repo.image(&new.id).await.unwrap().unwrap();
    assert_eq!((&stored.placeholder, stored.frames), (&new.placeholder, Some(7)));
    let mut missing: Vec<ImageId> = repo.images_to_backfill(10).await.unwrap().into_iter().map(|r| r.id).collect();
    missing.sort_by_key(|id| id.to_string());
    let mut expected =
        vec![old.id.clone(), uncounted.id.clone(), uncopied.id.clone(), earlier.id.clone(), unmeasured.id.clone()];
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(missing, expected);
    let computed = new.placeholder.clone().unwrap();
    let inspection = |frames, levels| db::Inspection { placeholder: computed.clone(), frames, levels, copies_bytes: 0 };
    assert!(repo.set_inspection(&old.id, &inspection(1, 0)).await.unwrap());
    assert!(repo.set_inspection(&uncounted.id, &inspection(12, 0)).await.unwrap());
    assert!(repo.set_inspection(&uncopied.id, &inspection(1, 0b11100)).await.unwrap());
    assert!(repo.set_inspection(&earlier.id, &inspection(1, 0b11100)).await.unwrap());
    let measured = db::Inspection { copies_bytes: 12_345, ..inspection(1, 0b11100) };
    assert!(repo.set_inspection(&unmeasured.id, &measured).await.unwrap());
    let filled = repo.image(&old.id).await.unwrap().unwrap();
    assert_eq!((filled.placeholder, filled.frames), (Some(computed.clone()), Some(1)));
    assert_eq!(repo.image(&uncounted.id).await.unwrap().unwrap().frames, Some(12));
    assert_eq!(repo.image(&uncopied.id).await.unwrap().unwrap().levels, Some(0b11100));
    assert_eq!(repo.image(&unmeasured.id).await.unwrap().unwrap().copies_bytes, Some(12_345));
    // Six rows of 99 bytes, and the copies counted so far.
    let storage = repo.storage(&owner.id).await.unwrap();
    assert_eq!(storage, db::Storage { images: 6, original_bytes: 6 * 99, copies_bytes: 12_345 });
    let nobody = repo.create_user(&new_user("no-images")).await.unwrap();
    assert_eq!(repo.storage(&nobody.id).await.unwrap(), db::Storage::default());
    assert!(repo.images_to_backfill(10).await.unwrap().is_empty());
    assert!(!repo.set_inspection(&ImageId::generate(), &inspection(1, 0)).await.unwrap(), "no such row");
}

async fn presets_are_per_owner_and_replaced_by_name(repo: &dyn Repository) {
    let owner = repo.create_user(&new_user("presets")).await.unwrap();
    let other = repo.create_user(&new_user("presets2")).await.unwrap();
    let preset = |name: &str, ops: &str, public: bool| Preset {
        owner: owner.id.clone(),
        name: name.to_owned(),
        ops: ops.to_owned(),
        public,
        updated_at: db::to_micros(Utc::now()),
    };
    assert!(repo.put_preset(&preset("thumb", "w_100", false), 2).await.unwrap());
    assert!(repo.put_preset(&preset("card", "w_400,h_300", true), 2).await.unwrap());
    // At the limit a new name is kept out, while an existing one is still replaced.
    assert!(!repo.put_preset(&preset("hero", "w_900", true), 2).await.unwrap());
    let replaced = preset("thumb", "w_200,fmt_webp", true);
    assert!(repo.put_preset(&replaced, 2).await.unwrap());
    assert_eq!(repo.preset(&owner.id, "thumb").await.unwrap(), Some(replaced.clone()));
    assert_eq!(repo.preset(&owner.id, "hero").await.unwrap(), None);
    let names = |page: Vec<Preset>| page.into_iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(names(repo.presets(&owner.id, None, 10).await.unwrap()), vec!["card", "thumb"]);
    // Pages by name, strictly after the cursor.
    assert_eq!(names(repo.presets(&owner.id, None, 1).await.unwrap()), vec!["card"]);
    assert_eq!(names(repo.presets(&owner.id, Some("card"), 1).await.unwrap()), vec!["thumb"]);
    assert!(repo.presets(&owner.id, Some("thumb"), 10).await.unwrap().is_empty());
    assert_eq!(repo.preset(&other.id, "thumb").await.unwrap(), None, "per owner");
    assert!(repo.presets(&other.id, None, 10).await.unwrap().is_empty());
    assert!(repo.delete_preset(&owner.id, "thumb").await.unwrap());
    assert!(!repo.delete_preset(&owner.id, "thumb").await.unwrap());
    assert_eq!(repo.presets(&owner.id, None, 10).await.unwrap().len(), 1);
    // Deleting a user takes their presets with them.
    assert!(repo.users().await.unwrap().iter().any(|u| u.id == owner.id));
    assert!(repo.delete_user(&owner.id).await.unwrap());
    assert!(!repo.delete_user(&owner.id).await.unwrap());
    assert!(repo.presets(&owner.id, None, 10).await.unwrap().is_empty());
    assert!(!repo.users().await.unwrap().iter().any(|u| u.id == owner.id));
}

async fn quota_charges_refunds_and_rolls_over(repo: &dyn Repository) {
    let u = repo.create_user(&new_user("quota")).await.unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
    let next = day.succ_opt().unwrap();
    assert_eq!(repo.charge_quota(&u.id, day, 2).await.unwrap(), Some(1));
    assert_eq!(repo.charge_quota(&u.id, day, 2).await.unwrap(), Some(2));
    assert_eq!(repo.charge_quota(&u.id, day, 2).await.unwrap(), None, "budget spent");
    repo.refund_quota(&u.id, day).await.unwrap();
    assert_eq!(repo.charge_quota(&u.id, day, 2).await.unwrap(), Some(2), "a refund frees one unit");
    // A refund for another day does nothing; the count never goes below zero.
    repo.refund_quota(&u.id, next).await.unwrap();
    assert_eq!(repo.user(&u.id).await.unwrap().unwrap().transform_count, 2);
    assert_eq!(repo.charge_quota(&u.id, next, 2).await.unwrap(), Some(1), "a new day starts at one");
    repo.refund_quota(&u.id, next).await.unwrap();
    repo.refund_quota(&u.id, next).await.unwrap();
    assert_eq!(repo.user(&u.id).await.unwrap().unwrap().transform_count, 0);
    assert_eq!(
        repo.charge_quota(&u.id, next.succ_opt().unwrap(), 0).await.unwrap(),
        None,
        "a zero budget never charges"
    );
    assert_eq!(repo.charge_quota(&UserId::generate(), day, 5).await.unwrap(), None, "unknown user");
}

async fn repository_contract(backend: Backend) {
    let (env, repo) = repository(backend).await;
    users_keys_and_conflicts(repo.as_ref()).await;
    images_page_newest_first(repo.as_ref()).await;
    placeholders_are_stored_and_backfilled(repo.as_ref()).await;
    presets_are_per_owner_and_replaced_by_name(repo.as_ref()).await;
    quota_charges_refunds_and_rolls_over(repo.as_ref()).await;
    repo.ping().await.unwrap();
    // Migrations are idempotent: connecting again applies nothing and keeps the data.
    let again = db::connect(&env.config().database).await.expect("reconnect");
    assert!(again.user_by_username("alice").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_recorded_once_on_sqlite() {
    let (env, _repo) = repository(Backend::Sqlite).await;
    let _second = db::connect(&env.config().database).await.expect("reconnect");
    let imgedge::config::DatabaseBackend::Sqlite(path) = &env.database else { unreachable!() };
    let conn = rusqlite::Connection::open(path).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0)).unwrap();
    assert_eq!(n, imgedge::db::migrate::SQLITE.len() as i64);
}

crate::for_backends!([Sqlite, Postgres] repository_contract);

/// Tests that need PostgreSQL (at `TEST_DATABASE_URL`): the `postgres` tier of `tests/run`.
mod needs_postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrations_are_recorded_once_on_postgres() {
        let (env, _repo) = repository(Backend::Postgres).await;
        let _second = db::connect(&env.config().database).await.expect("reconnect");
        let imgedge::config::DatabaseBackend::Postgres(url) = &env.database else { unreachable!() };
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let rows = client.query("SELECT version, name FROM schema_migrations ORDER BY version", &[]).await.unwrap();
        assert_eq!(rows.len(), imgedge::db::migrate::POSTGRES.len());
        assert_eq!(rows[0].get::<_, String>(1), "0001_init.sql");
    }
}
