//! The Admin page's server functions: each asks the domain whether the signed-in person is
//! an administrator first (403 otherwise), then makes one call.

use leptos::prelude::*;

use crate::wire::{AdminKeyView, AdminLogView, AdminPeopleView, AdminPersonView, PortalError};

/// People on a page of the Admin page's list.
pub const PEOPLE_PAGE: u64 = 25;
/// Events on a page of everyone's security log.
pub const ADMIN_LOG_PAGE: u64 = 25;

#[cfg(feature = "ssr")]
mod support {
    use crate::{
        domain::admin::{Admin, AdminError, OwnedKey, Person},
        server::{auth::portal::CurrentUser, state::AppState},
        wire::{AdminKeyView, AdminPersonView, PortalError},
    };

    /// The app state, the administrator's proof and who they are; 401 signed out, 403 for
    /// anyone else.
    pub async fn admin() -> Result<(AppState, Admin, CurrentUser), PortalError> {
        let (state, me) = crate::app::server_fns::support::signed_in()?;
        let admin = state.admin.authorize(me.user.id, crate::permissions::Permissions::All).await.map_err(refused)?;
        Ok((state, admin, me))
    }

    /// The one translation of an administrator's failure for the portal (with its status).
    pub fn refused(error: AdminError) -> PortalError {
        use crate::app::server_fns::support::{set_status, unavailable};
        use axum::http::StatusCode;
        let (status, error) = match error {
            AdminError::Forbidden => (StatusCode::FORBIDDEN, PortalError::NotAdmin),
            AdminError::UserNotFound => (StatusCode::NOT_FOUND, PortalError::NotFound("That person does not exist.".into())),
            AdminError::KeyNotFound => (StatusCode::NOT_FOUND, PortalError::NotFound("No API key with that id.".into())),
            AdminError::SelfDisable => (StatusCode::CONFLICT, PortalError::Conflict("You cannot disable your own account.".into())),
            AdminError::InvalidSearch => (
                StatusCode::BAD_REQUEST,
                PortalError::Invalid { field: "search".into(), message: "Search with at most 100 characters.".into() },
            ),
            AdminError::Database(e) | AdminError::Session(crate::domain::sessions::SessionError::Database(e)) => return unavailable(e),
            AdminError::Key(crate::domain::api_keys::ApiKeyError::Database(e)) => return unavailable(e),
            AdminError::Session(_) | AdminError::Key(_) => (StatusCode::SERVICE_UNAVAILABLE, PortalError::Unavailable),
        };
        set_status(status);
        error
    }

    pub fn person_view(p: Person, me: i64) -> AdminPersonView {
        AdminPersonView {
            me: p.id == me,
            id: p.id,
            email: p.email,
            name: p.name,
            disabled: p.disabled_at.is_some(),
            admin: p.admin,
            created_at: p.created_at.timestamp_millis(),
            last_sign_in_at: p.last_sign_in_at.timestamp_millis(),
        }
    }

    pub fn key_view(k: OwnedKey, me: i64) -> AdminKeyView {
        AdminKeyView {
            status: k.key.status(chrono::Utc::now()).as_str().to_owned(),
            id: k.key.id,
            name: k.key.name,
            hint: k.key.hint,
            created_at: k.key.created_at.timestamp_millis(),
            last_used_at: k.key.last_used_at.map(|t| t.timestamp_millis()),
            owner: k.owner.map(|p| person_view(p, me)),
        }
    }
}

/// People whose email or name contains `search`, newest first, a page at a time.
#[server(prefix = "/api", endpoint = "admin_people")]
pub async fn admin_people(search: String, before: Option<i64>) -> Result<AdminPeopleView, PortalError> {
    let (state, admin, me) = support::admin().await?;
    let page = state.admin.people(&admin, Some(&search), PEOPLE_PAGE, before.filter(|b| *b > 0)).await.map_err(support::refused)?;
    let older = if page.has_more { page.people.last().map(|p| p.id) } else { None };
    Ok(AdminPeopleView { people: page.people.into_iter().map(|p| support::person_view(p, me.user.id)).collect(), older })
}

/// Disables (signs out everywhere, refuses their keys) or enables a person.
#[server(prefix = "/api", endpoint = "admin_set_disabled")]
pub async fn admin_set_disabled(user_id: i64, disabled: bool) -> Result<AdminPersonView, PortalError> {
    let (state, admin, me) = support::admin().await?;
    let ctx = crate::app::server_fns::support::audit_context(&me);
    let person = if disabled { state.admin.disable(&admin, user_id, &ctx).await } else { state.admin.enable(&admin, user_id, &ctx).await };
    Ok(support::person_view(person.map_err(support::refused)?, me.user.id))
}

/// Anyone's key by id (`42`) or by hint (`wj_live_a1b2…x9y8`), with its owner.
#[server(prefix = "/api", endpoint = "admin_find_keys")]
pub async fn admin_find_keys(query: String) -> Result<Vec<AdminKeyView>, PortalError> {
    let (state, admin, me) = support::admin().await?;
    let found = state.admin.find_keys(&admin, &query).await;
    Ok(found.map_err(support::refused)?.into_iter().map(|k| support::key_view(k, me.user.id)).collect())
}

/// Revokes anyone's key, at once and everywhere.
#[server(prefix = "/api", endpoint = "admin_revoke_key")]
pub async fn admin_revoke_key(id: i64) -> Result<AdminKeyView, PortalError> {
    let (state, admin, me) = support::admin().await?;
    let ctx = crate::app::server_fns::support::audit_context(&me);
    Ok(support::key_view(state.admin.revoke_key(&admin, id, &ctx).await.map_err(support::refused)?, me.user.id))
}

/// Everyone's security log, newest first: the newest page, or the one older than `before`.
#[server(prefix = "/api", endpoint = "admin_log")]
pub async fn admin_log(before: Option<i64>) -> Result<AdminLogView, PortalError> {
    let (state, admin, _) = support::admin().await?;
    let page = state.admin.events(&admin, before.filter(|b| *b > 0), ADMIN_LOG_PAGE).await.map_err(support::refused)?;
    let older = if page.has_more { page.events.last().map(|e| e.event.id) } else { None };
    let view = |e: crate::domain::admin::LoggedEvent| crate::wire::AdminEventView {
        event: super::security_log::event_view(e.event),
        actor_email: e.actor_email,
        subject_email: e.subject_email,
    };
    let events = page.events.into_iter().map(view).collect();
    Ok(AdminLogView { events, older, now_ms: chrono::Utc::now().timestamp_millis() })
}
