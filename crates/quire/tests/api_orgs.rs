//! Black-box tests of organizations (DESIGN.md "Organizations and machine
//! identities"): `org_...` members, the role a caller gets from their
//! token's active organization (highest wins, active org only, v1 and v2
//! claims), listings with `via_org`, and the sockets that close (4403) when
//! an organization's share, a user's membership in it, or the organization
//! itself goes away.

mod ws_support;

use reqwest::Method;
use serde_json::{json, Value};
use ws_support::{spawn, svix_signature, WsApp, WEBHOOK_SECRET};

const OWNER: &str = "user_owner";
const BOB: &str = "user_bob";
const ORG: &str = "org_team";
const OTHER_ORG: &str = "org_other";

/// A session token for `user` whose active organization is `org` (v2 claims).
fn org_token(app: &WsApp, user: &str, org: &str) -> String {
    app.standin
        .token(user)
        .org(org, "team", "member", "", "", "")
        .lifetime(3600)
        .sign()
}

/// A server and a notebook owned by OWNER; returns the owner's token and the id.
async fn notebook(app: &WsApp) -> (String, String) {
    let owner = app.token(OWNER);
    let nb = app.create_notebook(&owner, "Team notes", json!([])).await;
    let id = nb["id"].as_str().expect("id").to_string();
    (owner, id)
}

async fn get(app: &WsApp, token: &str, path: &str) -> (u16, Value) {
    let r = app.rest(Method::GET, path, token, None).await;
    (r.status, r.json)
}

fn nb_path(id: &str) -> String {
    format!("/api/v1/notebooks/{id}")
}

/// The listing item for `id` as `token` sees it, if listed.
async fn listed(app: &WsApp, token: &str, id: &str) -> Option<Value> {
    let (status, page) = get(app, token, "/api/v1/notebooks").await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|item| item["id"] == id)
        .cloned()
}

/// Delivers a signed Clerk webhook; asserts it was accepted.
async fn webhook(app: &WsApp, svix_id: &str, body: Value) {
    let body = body.to_string().into_bytes();
    let ts = chrono::Utc::now().timestamp();
    let sig = svix_signature(WEBHOOK_SECRET, svix_id, ts, &body);
    let r = app
        .http
        .post(format!("{}/api/v1/webhooks/clerk", app.base))
        .header("svix-id", svix_id)
        .header("svix-timestamp", ts.to_string())
        .header("svix-signature", sig)
        .body(body)
        .send()
        .await
        .expect("webhook sent");
    assert_eq!(r.status().as_u16(), 204);
}

fn membership_deleted(user: &str, org: &str) -> Value {
    json!({
        "type": "organizationMembership.deleted",
        "object": "event",
        "data": {
            "object": "organization_membership",
            "id": "orgmem_1",
            "role": "org:member",
            "organization": {"id": org, "object": "organization", "name": "Team"},
            "public_user_data": {"user_id": user, "identifier": "bob@example.com"},
        },
    })
}

#[tokio::test]
async fn an_org_share_gives_members_of_the_active_org_its_role_and_no_one_else() {
    let app = spawn().await;
    let (owner, id) = notebook(&app).await;
    app.share(&owner, &id, ORG, "viewer").await;

    let in_org = org_token(&app, BOB, ORG);
    let (status, body) = get(&app, &in_org, &nb_path(&id)).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("viewer")));
    // Viewer through the org: no writing.
    let r = app
        .rest(
            Method::PATCH,
            &nb_path(&id),
            &in_org,
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(r.status, 403);

    // Legacy v1 claims name the active org as well.
    let v1 = app
        .standin
        .token(BOB)
        .v1()
        .org(ORG, "team", "org:member", "", "", "")
        .lifetime(3600)
        .sign();
    assert_eq!(get(&app, &v1, &nb_path(&id)).await.0, 200);

    // Without an active org, or with another one active: nothing.
    assert_eq!(get(&app, &app.token(BOB), &nb_path(&id)).await.0, 403);
    let other = org_token(&app, BOB, OTHER_ORG);
    assert_eq!(get(&app, &other, &nb_path(&id)).await.0, 403);
}

#[tokio::test]
async fn the_highest_of_own_and_org_role_wins() {
    let app = spawn().await;
    let (owner, id) = notebook(&app).await;
    let bob = org_token(&app, BOB, ORG);

    app.share(&owner, &id, ORG, "editor").await;
    app.share(&owner, &id, BOB, "viewer").await;
    assert_eq!(get(&app, &bob, &nb_path(&id)).await.1["role"], "editor");
    app.rest_rename(&bob, &id, "renamed by bob").await;

    app.share(&owner, &id, ORG, "viewer").await;
    app.share(&owner, &id, BOB, "editor").await;
    assert_eq!(get(&app, &bob, &nb_path(&id)).await.1["role"], "editor");

    // The org's members are never the owner, whatever the org's role.
    let r = app.rest(Method::DELETE, &nb_path(&id), &bob, None).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn listing_includes_org_shares_and_names_the_org_only_when_it_alone_grants() {
    let app = spawn().await;
    let (owner, id) = notebook(&app).await;
    app.share(&owner, &id, ORG, "viewer").await;

    let bob = org_token(&app, BOB, ORG);
    let item = listed(&app, &bob, &id)
        .await
        .expect("listed through the org");
    assert_eq!(item["via_org"], ORG);
    assert_eq!(item["role"], "viewer");

    assert!(listed(&app, &app.token(BOB), &id).await.is_none());

    app.share(&owner, &id, BOB, "editor").await;
    let item = listed(&app, &bob, &id).await.expect("listed");
    assert_eq!(item["role"], "editor");
    assert!(item.get("via_org").is_none(), "{item}");

    // The owner's own listing never names an org.
    let own = org_token(&app, OWNER, ORG);
    let item = listed(&app, &own, &id).await.expect("owner lists it");
    assert_eq!(item["role"], "owner");
    assert!(item.get("via_org").is_none(), "{item}");
}

#[tokio::test]
async fn member_ids_must_be_user_org_or_machine_ids() {
    let app = spawn().await;
    let (owner, id) = notebook(&app).await;
    for bad in ["bob", "team_x", "org_", "sess_123"] {
        let r = app
            .rest(
                Method::PUT,
                &format!("/api/v1/notebooks/{id}/members/{bad}"),
                &owner,
                Some(json!({"role": "viewer"})),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.json);
    }
    app.share(&owner, &id, "mch_builder", "viewer").await;
    let (_, members) = get(&app, &owner, &format!("{}/members", nb_path(&id))).await;
    assert!(members.to_string().contains("mch_builder"), "{members}");
}

#[tokio::test]
async fn removing_an_org_share_closes_only_the_sockets_that_depended_on_it() {
    let app = spawn().await;
    let (owner, id) = notebook(&app).await;
    app.share(&owner, &id, ORG, "editor").await;
    app.share(&owner, &id, "user_carol", "viewer").await;

    let (mut bob, _) = app.open(&id, &org_token(&app, BOB, ORG)).await;
    let (mut carol, _) = app.open(&id, &org_token(&app, "user_carol", ORG)).await;

    app.unshare(&owner, &id, ORG).await;
    bob.expect_close(4403).await;
    // Carol keeps her own (viewer) access: told her role, still open.
    let seen = carol.barrier().await;
    assert!(
        seen.iter()
            .any(|m| m["type"] == "role" && m["role"] == "viewer"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_deleted_org_membership_is_refused_at_once_though_the_token_names_the_org() {
    let app = spawn().await;
    let (owner, id) = notebook(&app).await;
    app.share(&owner, &id, ORG, "editor").await;
    let bob = org_token(&app, BOB, ORG);
    let (mut ws, _) = app.open(&id, &bob).await;

    webhook(&app, "msg_membership_1", membership_deleted(BOB, ORG)).await;
    ws.expect_close(4403).await;
    assert_eq!(get(&app, &bob, &nb_path(&id)).await.0, 403);
    assert!(listed(&app, &bob, &id).await.is_none());

    // Other members of the org are unaffected.
    let carol = org_token(&app, "user_carol", ORG);
    assert_eq!(get(&app, &carol, &nb_path(&id)).await.0, 200);
}

#[tokio::test]
async fn a_deleted_organization_loses_its_shares_and_its_sockets() {
    let app = spawn().await;
    let (owner, id) = notebook(&app).await;
    app.share(&owner, &id, ORG, "viewer").await;
    let bob = org_token(&app, BOB, ORG);
    let (mut ws, _) = app.open(&id, &bob).await;

    let event = json!({
        "type": "organization.deleted",
        "object": "event",
        "data": {"id": ORG, "object": "organization", "deleted": true},
    });
    webhook(&app, "msg_org_deleted_1", event).await;
    ws.expect_close(4403).await;
    assert_eq!(get(&app, &bob, &nb_path(&id)).await.0, 403);
    let (_, members) = get(&app, &owner, &format!("{}/members", nb_path(&id))).await;
    assert!(!members.to_string().contains(ORG), "{members}");
}
