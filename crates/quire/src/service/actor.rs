//! Who acts on notebooks, and with which role: the one place the rules of
//! DESIGN.md "Organizations and machine identities" are decided.
//!
//! A verified [`Principal`] becomes an [`Actor`]: the member id that acts
//! (a user, or for machine tokens possibly an organization or a machine),
//! the active organization whose shares also count (session users and
//! user-subject machine tokens), and the cap the token's scopes put on the
//! role. [`Actor::grant`] turns the stored roles into the effective one.

use clerk_auth::{Principal, SubjectKind};

use crate::auth::Revocations;
use crate::notebook::model::{MemberId, Role, UserId};

/// A token scope that lets a machine token read notebooks (viewer at most).
pub const SCOPE_READ: &str = "notebooks:read";
/// A token scope that lets a machine token write (the subject's full role).
pub const SCOPE_WRITE: &str = "notebooks:write";

/// The most a token's scopes allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    /// No scopes (or `notebooks:write`): the subject's full role.
    Full,
    /// `notebooks:read` without `notebooks:write`: viewer at most.
    Viewer,
    /// Scopes, none of them for notebooks: nothing here.
    Nothing,
}

impl Cap {
    fn of(scopes: &[String]) -> Cap {
        let has = |s: &str| scopes.iter().any(|x| x == s);
        if scopes.is_empty() || has(SCOPE_WRITE) {
            Cap::Full
        } else if has(SCOPE_READ) {
            Cap::Viewer
        } else {
            Cap::Nothing
        }
    }
}

/// Who acts: what every access check and change of the service takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The member id that acts: the author of its ops, the owner of what it
    /// creates (users only), the id its own membership is stored under.
    pub id: UserId,
    /// The active organization whose membership also counts; `None` when
    /// the token names none or the user's membership in it was revoked.
    pub org: Option<UserId>,
    cap: Cap,
    is_user: bool,
}

/// The effective access of an actor on one notebook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: Role,
    /// The organization, when the access comes only from its share.
    pub via_org: Option<UserId>,
}

impl Actor {
    /// A signed-in user with no active organization and no scopes.
    pub fn user(id: UserId) -> Actor {
        Actor {
            id,
            org: None,
            cap: Cap::Full,
            is_user: true,
        }
    }

    /// The actor a verified principal stands for. `None` when its subject
    /// is not an id we accept (a token we cannot attribute is refused).
    pub fn of(principal: &Principal, revocations: &Revocations) -> Option<Actor> {
        // A session's user id keeps the rules it always had (any opaque id);
        // a machine token's subject must say what it is by its prefix.
        let id = if principal.is_machine() {
            MemberId::parse(&principal.subject).ok()?.into_id()
        } else {
            UserId::parse(&principal.user_id).ok()?
        };
        let is_user = !principal.is_machine() || principal.subject_kind() == SubjectKind::User;
        let org = principal
            .org
            .as_ref()
            .filter(|_| is_user)
            .and_then(|o| MemberId::parse(&o.id).ok())
            .map(MemberId::into_id)
            .filter(|o| o.as_str().starts_with("org_"))
            .filter(|o| !revocations.org_membership_revoked(id.as_str(), o.as_str()));
        Some(Actor {
            id,
            org,
            cap: Cap::of(&principal.scopes),
            is_user,
        })
    }

    /// The effective role from the actor's own role (`own`, owner included)
    /// and its organization's (`org`, ignored without an active org): the
    /// higher of the two, capped by the token's scopes.
    pub fn grant(&self, own: Option<Role>, org: Option<Role>) -> Option<Grant> {
        let org = org.filter(|_| self.org.is_some());
        let role = match (own, org) {
            (Some(a), Some(b)) => a.max(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return None,
        };
        let role = match self.cap {
            Cap::Full => role,
            Cap::Viewer => role.min(Role::Viewer),
            Cap::Nothing => return None,
        };
        let via_org = match own {
            None => self.org.clone(),
            Some(_) => None,
        };
        Some(Grant { role, via_org })
    }

    /// Whether the actor may create notebooks: only users own notebooks
    /// (an organization or machine has nobody to transfer them to), and
    /// only with a token allowed to write.
    pub fn may_create(&self) -> bool {
        self.is_user && self.cap == Cap::Full
    }

    /// Whether the token's scopes cap the role below the subject's.
    pub fn is_capped(&self) -> bool {
        self.cap != Cap::Full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(org: Option<&str>, cap: Cap) -> Actor {
        Actor {
            id: UserId::parse("user_a").unwrap(),
            org: org.map(|o| UserId::parse(o).unwrap()),
            cap,
            is_user: true,
        }
    }

    #[test]
    fn highest_of_own_and_org_wins_and_names_the_org_only_when_it_alone_grants() {
        let a = actor(Some("org_x"), Cap::Full);
        let g = a.grant(Some(Role::Viewer), Some(Role::Editor)).unwrap();
        assert_eq!((g.role, g.via_org), (Role::Editor, None));
        let g = a.grant(None, Some(Role::Viewer)).unwrap();
        assert_eq!(g.via_org.unwrap().as_str(), "org_x");
        assert_eq!(a.grant(None, None), None);
    }

    #[test]
    fn org_role_counts_only_with_an_active_org() {
        assert_eq!(actor(None, Cap::Full).grant(None, Some(Role::Editor)), None);
    }

    #[test]
    fn scopes_cap_the_role() {
        let read = actor(None, Cap::of(&["notebooks:read".into()]));
        assert_eq!(
            read.grant(Some(Role::Owner), None).unwrap().role,
            Role::Viewer
        );
        let other = actor(None, Cap::of(&["profile".into()]));
        assert_eq!(other.grant(Some(Role::Owner), None), None);
        let write = Cap::of(&["notebooks:read".into(), "notebooks:write".into()]);
        assert_eq!(write, Cap::Full);
    }
}
