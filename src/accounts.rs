//! Owners' accounts: register, log in, who a token is, signing keys, plans, and deleting an
//! owner with everything they own. The HTTP handlers and the command line both come here, so
//! an account is made, checked and removed by one set of rules.

use crate::auth::{password, AuthError, SigningKey};
use crate::db::{to_micros, DbError, NewUser, OwnerKey, PageAfter, Storage, User};
use crate::error::Error;
use crate::ids::{ImageId, UserId};
use crate::images::Images;
use crate::purges;
use crate::shared::Shared;

/// Accounts over the shared collaborators.
#[derive(Clone)]
pub struct Accounts {
    shared: Shared,
    images: Images,
}

/// What deleting an owner removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The owner.
    pub user: User,
    /// Their images (rows and objects).
    pub images: usize,
}

/// Checks a username and a password against the rules, before any work is done for them.
///
/// # Errors
/// 400 naming the rule broken.
pub fn check_credentials(username: &str, secret: &str) -> Result<(), Error> {
    password::check_username(username).map_err(|rule| Error::InvalidRequest(rule.into()))?;
    password::check_password(secret).map_err(|rule| Error::InvalidRequest(rule.into()))
}

impl Accounts {
    /// Accounts over `shared`; an owner's images are removed through `images`.
    pub fn new(shared: Shared, images: Images) -> Self {
        Self { shared, images }
    }

    /// Creates an owner with a fresh signing key (password hashed on its own pool), on `plan`
    /// when given.
    ///
    /// # Errors
    /// 400 for a username or password outside the rules, 409 when the name is taken, 503 when
    /// the hashing pool is full, 5xx when the database fails.
    pub async fn register(&self, username: &str, secret: String, plan: Option<&str>) -> Result<User, Error> {
        check_credentials(username, &secret)?;
        let hash = self.shared.hashing.run(move || password::hash(&secret)).await?.map_err(Error::internal)?;
        let new = NewUser {
            id: UserId::generate(),
            username: username.to_owned(),
            password_hash: hash,
            signing_key: SigningKey::generate(),
            created_at: to_micros(self.shared.clock.now()),
        };
        let mut user = self.shared.db.create_user(&new).await.map_err(|e| match e {
            DbError::Conflict => Error::Conflict("username is taken"),
            other => other.into(),
        })?;
        if let Some(plan) = plan {
            self.shared.db.set_plan(&user.id, plan).await?;
            plan.clone_into(&mut user.plan);
        }
        tracing::info!(user_id = %user.id, "owner registered");
        Ok(user)
    }

    /// The owner with this username and password. An unknown name costs a hash all the same,
    /// so the answer's time does not tell which names exist.
    ///
    /// # Errors
    /// 401 `BadCredentials` for an unknown name or a wrong password, 503 when the hashing pool
    /// is full, 5xx when the database fails.
    pub async fn login(&self, username: &str, secret: String) -> Result<User, Error> {
        let found = self.shared.db.user_by_username(username).await?;
        let hashing = &self.shared.hashing;
        let Some((user, hash)) = found else {
            hashing.run(move || password::verify_dummy(&secret)).await?;
            return Err(AuthError::BadCredentials.into());
        };
        if hashing.run(move || password::verify(&secret, &hash)).await? {
            Ok(user)
        } else {
            Err(AuthError::BadCredentials.into())
        }
    }

    /// A token for `user`.
    ///
    /// # Errors
    /// 5xx when the token cannot be signed.
    pub fn token(&self, user: &User) -> Result<String, Error> {
        self.shared.jwt.issue(&user.id, self.shared.clock.unix()).map_err(Error::internal)
    }

    /// The owner a bearer token names, while they exist: a deleted owner's token stops working
    /// on this replica at once and on every replica within the lookup bound, before any work is
    /// done for it.
    ///
    /// # Errors
    /// 401 without a token, with an invalid or expired one, or for an owner who is gone; 5xx
    /// when the lookup fails.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<UserId, Error> {
        let token = bearer.ok_or(AuthError::MissingToken)?;
        let id = self.shared.jwt.verify(token, self.shared.clock.unix())?;
        match self.shared.lookups.owner(&id).await?.value {
            Some(_) => Ok(id),
            None => Err(AuthError::InvalidToken.into()),
        }
    }

    /// The owner `id`, their quota today and what they keep in the object store.
    ///
    /// # Errors
    /// 401 when they are gone, 5xx when the database fails.
    pub async fn me(&self, id: &UserId) -> Result<(User, crate::quota::Status, Storage), Error> {
        let user = self.shared.db.user(id).await?.ok_or(AuthError::InvalidToken)?;
        let quota = self.shared.quota.status(&user);
        let storage = self.shared.db.storage(id).await?;
        Ok((user, quota, storage))
    }

    /// The owner's current signing key and plan, from the database (not the lookup cache): a
    /// rotation on any replica is seen at once.
    ///
    /// # Errors
    /// 401 when the owner is gone, 5xx when the database fails.
    pub async fn key(&self, id: &UserId) -> Result<OwnerKey, Error> {
        Ok(self.shared.db.owner_key(id).await?.ok_or(AuthError::InvalidToken)?)
    }

    /// Gives the owner a new signing key: URLs signed with the old one stop working.
    ///
    /// # Errors
    /// 401 when the owner is gone, 5xx when the database fails.
    pub async fn rotate_key(&self, id: &UserId) -> Result<SigningKey, Error> {
        let key = SigningKey::generate();
        if !self.shared.db.set_signing_key(id, &key).await? {
            return Err(AuthError::InvalidToken.into());
        }
        self.shared.lookups.forget_owner(id);
        // Every URL signed with the old key is refused now; shared caches still hold answers.
        self.shared.purges.queue(&[purges::owner_tag(id)]).await;
        tracing::info!(user_id = %id, "signing key rotated");
        Ok(key)
    }

    /// The owner called `username`.
    ///
    /// # Errors
    /// 404 when there is none, 5xx when the database fails.
    pub async fn named(&self, username: &str) -> Result<User, Error> {
        let found = self.shared.db.user_by_username(username).await?;
        found.map(|(user, _)| user).ok_or(Error::NotFound("no user by that name"))
    }

    /// Every owner, oldest first.
    ///
    /// # Errors
    /// 5xx when the database fails.
    pub async fn list(&self) -> Result<Vec<User>, Error> {
        Ok(self.shared.db.users().await?)
    }

    /// Moves `username` to `plan`.
    ///
    /// # Errors
    /// 404 when there is no such owner, 5xx when the database fails.
    pub async fn set_plan(&self, username: &str, plan: &str) -> Result<User, Error> {
        let mut user = self.named(username).await?;
        self.shared.db.set_plan(&user.id, plan).await?;
        self.shared.lookups.forget_owner(&user.id);
        plan.clone_into(&mut user.plan);
        Ok(user)
    }

    /// Deletes `username` with their presets and images: the rows first, then the objects
    /// (what cannot be removed is left to `imgedge sweep`).
    ///
    /// # Errors
    /// 404 when there is no such owner, 5xx when the database fails.
    pub async fn delete(&self, username: &str) -> Result<Removed, Error> {
        let user = self.named(username).await?;
        let images = self.every_image(&user.id).await?;
        self.shared.db.delete_user(&user.id).await?;
        self.shared.lookups.forget_owner(&user.id);
        self.shared.purges.queue(&[purges::owner_tag(&user.id)]).await;
        self.shared.lookups.forget_presets(&user.id);
        for id in &images {
            self.shared.lookups.forget_image(id);
            self.images.remove_objects(id).await;
        }
        tracing::info!(user_id = %user.id, images = images.len(), "owner deleted");
        Ok(Removed { user, images: images.len() })
    }

    async fn every_image(&self, owner: &UserId) -> Result<Vec<ImageId>, DbError> {
        let (mut ids, mut after) = (Vec::new(), None);
        loop {
            let page = self.shared.db.list_images(owner, after.as_ref(), 500).await?;
            let Some(last) = page.last() else { return Ok(ids) };
            after = Some(PageAfter { created_at: last.created_at, id: last.id.clone() });
            ids.extend(page.into_iter().map(|i| i.id));
        }
    }
}
