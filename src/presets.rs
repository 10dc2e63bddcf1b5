//! Owners' presets: named ops used as `p_NAME` in `/i` paths. A change reaches this replica's
//! lookups at once and every other replica's within the lookup bound; an owner has at most
//! `limits.max_presets` of them.

use crate::db::{to_micros, Preset};
use crate::error::Error;
use crate::ids::UserId;
use crate::purges;
use crate::shared::Shared;
use crate::transform::grammar;

/// Presets over the shared collaborators.
#[derive(Clone)]
pub struct Presets {
    shared: Shared,
}

impl Presets {
    /// Presets over `shared`.
    pub fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Creates or replaces `owner`'s preset `name`; its ops are stored in canonical form.
    ///
    /// # Errors
    /// 400 for a bad name, ops that name a preset or change nothing, or ops that do not parse;
    /// 409 when a new name would pass `limits.max_presets`; 5xx when the database fails.
    pub async fn put(&self, owner: &UserId, name: &str, ops: &str, public: bool) -> Result<Preset, Error> {
        check_name(name)?;
        if grammar::split_preset(ops)?.0.is_some() {
            return Err(Error::InvalidRequest("a preset cannot use another preset (`p_`)".into()));
        }
        let ops = crate::transform::parse(ops, self.shared.limits.max_dimension)?.to_string();
        if ops.is_empty() {
            return Err(Error::InvalidRequest("these ops change nothing: a preset needs at least one".into()));
        }
        let preset = Preset {
            owner: owner.clone(),
            name: name.to_owned(),
            ops,
            public,
            updated_at: to_micros(self.shared.clock.now()),
        };
        let stored = self.shared.db.put_preset(&preset, self.shared.limits.max_presets).await?;
        self.shared.lookups.forget_presets(owner);
        if !stored {
            return Err(Error::Conflict("you have as many presets as allowed (limits.max_presets); delete one first"));
        }
        // Shared caches may hold answers made with the old ops.
        self.shared.purges.queue(&[purges::preset_tag(owner, name)]).await;
        Ok(preset)
    }

    /// A page of `owner`'s presets by name, and the cursor of the next page.
    ///
    /// # Errors
    /// 400 for a malformed cursor, 5xx when the database fails.
    pub async fn list(
        &self,
        owner: &UserId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Preset>, Option<String>), Error> {
        let after = cursor.map(decode_cursor).transpose()?;
        // One extra row tells whether another page exists.
        let mut rows = self.shared.db.presets(owner, after.as_deref(), limit + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(|p| encode_cursor(&p.name)) } else { None };
        Ok((rows, next))
    }

    /// Deletes `owner`'s preset `name`.
    ///
    /// # Errors
    /// 400 for a bad name, 404 when there is no such preset, 5xx when the database fails.
    pub async fn delete(&self, owner: &UserId, name: &str) -> Result<(), Error> {
        check_name(name)?;
        let deleted = self.shared.db.delete_preset(owner, name).await?;
        self.shared.lookups.forget_presets(owner);
        if deleted {
            self.shared.purges.queue(&[purges::preset_tag(owner, name)]).await;
            Ok(())
        } else {
            Err(Error::NotFound("preset not found"))
        }
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    if grammar::is_preset_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!("preset names are 1 to 32 of [a-z0-9_-], not `{name}`")))
    }
}

fn encode_cursor(name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

fn decode_cursor(cursor: &str) -> Result<String, Error> {
    use base64::Engine;
    let bad = || Error::InvalidRequest("invalid cursor".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    String::from_utf8(raw).ok().filter(|name| grammar::is_preset_name(name)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor("hero-2")).unwrap(), "hero-2");
        for bad in ["!!", "", &encode_cursor("Not A Name")] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
