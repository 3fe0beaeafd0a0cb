//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, generated from
//! the code: each handler's `#[utoipa::path]` (collected by the resource
//! `router()`s through `utoipa_axum::OpenApiRouter`, so a route cannot be
//! served without being described) plus what is shared here: the document's
//! info, the bearer security scheme, the error responses every route reuses
//! and the path parameters.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, Type};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToResponse};

use super::error::ErrorEnvelope;

/// The document, computed once from the routers.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = super::routes(0).into_openapi();
        // Needs the schemas the routes brought in, so it runs after them.
        UpdateNeedsAChange.modify(&mut doc);
        doc
    })
}

/// `UpdateCell` must set at least one of `source`, `cell_type`, `metadata`
/// (to a value: `null` means "not given"); a derive cannot say "any of".
struct UpdateNeedsAChange;

impl Modify for UpdateNeedsAChange {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(schemas) = openapi.components.as_mut().map(|c| &mut c.schemas) else {
            return;
        };
        let Some(fields) = schemas.get("UpdateCell").cloned() else {
            return;
        };
        let given = |name: &str, schema: RefOr<Schema>| {
            ObjectBuilder::new()
                .required(name)
                .property(name, schema)
                .build()
        };
        let string = ObjectBuilder::new().schema_type(Type::String).build();
        let object = ObjectBuilder::new().schema_type(Type::Object).build();
        let one_change = AnyOfBuilder::new()
            .item(given("source", string.into()))
            .item(given("cell_type", Ref::from_schema_name("CellType").into()))
            .item(given("metadata", object.into()))
            .build();
        let schema = AllOfBuilder::new()
            .item(fields)
            .item(Schema::AnyOf(one_change))
            .description(Some(
                "Only the members given change; at least one of `source`, `cell_type`, \
                 `metadata` must be given (400 otherwise).",
            ))
            .build();
        schemas.insert("UpdateCell".into(), RefOr::T(Schema::AllOf(schema)));
    }
}

/// Everything the handlers' attributes do not say.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "quire",
        description = "REST API (JSON, prefix `/api/v1`) and WebSocket upgrade of quire, a \
            multi-user notebook server.\n\n\
            Authentication: `Authorization: Bearer <Clerk session token>` on every route except \
            `/healthz`, `/readyz`, `/metrics`, `/api/v1/openapi.json` and the Svix-signed Clerk \
            webhook. Browsers may instead send the `__session` cookie when their `Origin` is \
            allowed; any `Authorization` header wins over the cookie.\n\n\
            Every error has the body `{\"error\":{\"code\",\"message\",\"request_id\"}}` (plus \
            `current` on cell conflicts) and every response carries `x-request-id`. Unknown \
            routes are 404, wrong methods 405, requests running over 30 s 408, all with the same \
            error body. 5xx bodies are generic; details go to the server log.\n\n\
            Limits (defaults, each configurable): JSON body 1 MiB and .ipynb import 16 MiB (413), \
            title 200 characters, cell source 1 MiB of UTF-8, 5,000 cells per notebook (422). \
            Timestamps are RFC 3339 UTC.",
    ),
    servers((url = "/")),
    security(("bearerAuth" = [])),
    modifiers(&BearerScheme),
    tags(
        (name = "system", description = "Liveness, readiness, metrics and this document."),
        (name = "me", description = "The authenticated caller."),
        (name = "notebooks", description = "Notebooks, .ipynb import and export."),
        (name = "cells", description = "Cell changes; each one is an op with a new notebook version."),
        (name = "members", description = "Sharing: owner, editors, viewers."),
        (name = "realtime", description = "Live editing over WebSocket."),
        (name = "webhooks", description = "Events from Clerk."),
    ),
    components(
        schemas(ErrorEnvelope),
        responses(
            BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed,
            PayloadTooLarge, Unprocessable, TooManyRequests, Internal, Unavailable,
        )
    )
)]
pub(crate) struct ApiDoc;

/// Adds the `bearerAuth` scheme the global `security` names.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "Clerk session token (RS256 JWT, about 60 s of life; the Clerk SDK refreshes it).",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearerAuth", SecurityScheme::Http(scheme));
    }
}

/// A response with the `Error` body.
fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name("Error"))),
    )
}

/// A header whose value is a string (or an integer, for `Retry-After`).
fn header(description: &str, schema_type: Type) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(utoipa::openapi::ObjectBuilder::new().schema_type(schema_type))
        .description(Some(description))
        .build()
}

/// Declares a shared error response (`#/components/responses/<Name>`).
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => $build:expr;)*) => {$(
        $(#[$doc])*
        pub(crate) struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                (stringify!($name), RefOr::T($build.build()))
            }
        }
    )*};
}

error_responses! {
    /// 400.
    BadRequest => error_response(
        "Bad request: invalid JSON (`invalid_json`), unknown or mistyped members \
         (`invalid_request`), malformed ids (`invalid_id`), values the schema allows but the \
         notebook's state does not, such as an index past the end (`bad_request`).",
    );
    /// 401, with `WWW-Authenticate`.
    Unauthorized => error_response(
        "Not authenticated: `unauthenticated` (no credentials of this scheme), \
         `token_expired`, `invalid_token` (any other verification failure; the reason is only \
         logged).",
    )
    .header("WWW-Authenticate", header(
        "`Bearer realm=\"quire\"` when no credentials were sent; \
         `Bearer realm=\"quire\", error=\"invalid_token\"` when a token was refused.",
        Type::String,
    ));
    /// 403.
    Forbidden => error_response(
        "`forbidden`: the notebook exists but the caller may not see it, or may not do this \
         (viewers writing, non-owners deleting or sharing); a foreign `Origin` on the upgrade.",
    );
    /// 404.
    NotFound => error_response("`not_found`: no such notebook (or it was deleted), cell or member.");
    /// 409.
    Conflict => error_response(
        "`conflict`: a stale `base_version` (the error carries the `current` cell) or a \
         duplicate client-chosen cell id (no `current`).",
    );
    /// 412.
    PreconditionFailed => error_response(
        "`precondition_failed`: the notebook version is not the one in `If-Match`.",
    );
    /// 413.
    PayloadTooLarge => error_response("`payload_too_large`: the body is over the size limit.");
    /// 422.
    Unprocessable => error_response(
        "`unprocessable`: a value over a limit (title length, cell source size, cells per notebook).",
    );
    /// 429.
    TooManyRequests => error_response(
        "`rate_limited`: too many open sockets for this user.",
    );
    /// 500.
    Internal => error_response("`internal`: an unexpected server error (details only in the log).");
    /// 503, with `Retry-After`.
    Unavailable => error_response(
        "Temporarily unavailable: `auth_unavailable` (keys or Clerk unreachable) or \
         `unavailable` (the store, or the webhook secret not configured). Retry after \
         `Retry-After` seconds.",
    )
    .header("Retry-After", header("Seconds to wait before retrying.", Type::Integer));
}

/// Declares a named set of the shared error responses above, so a route lists
/// its own statuses and names the set once (`responses((status = 200, ...), Set)`).
macro_rules! response_sets {
    ($($(#[$doc:meta])* $set:ident = [$($status:literal => $response:ident),* $(,)?];)*) => {$(
        $(#[$doc])*
        pub(crate) struct $set;

        impl IntoResponses for $set {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$(($status, stringify!($response))),*]
                    .into_iter()
                    .map(|(status, name)| (status.to_string(), RefOr::Ref(Ref::from_response_name(name))))
                    .collect()
            }
        }
    )*};
}

response_sets! {
    /// What every authenticated route may answer besides its own statuses.
    AuthErrors = ["401" => Unauthorized, "500" => Internal, "503" => Unavailable];
    /// What every route under `/notebooks/{id}` may answer: a malformed id (400), no token
    /// (401), no access (403), no such notebook or cell (404), and the server's own 500/503.
    NotebookErrors = [
        "400" => BadRequest,
        "401" => Unauthorized,
        "403" => Forbidden,
        "404" => NotFound,
        "500" => Internal,
        "503" => Unavailable,
    ];
}

/// `{id}`: every route under a notebook.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // describes the path; handlers parse it with `extract::notebook_id`
pub(crate) struct NotebookPath {
    /// Notebook id (hyphenated lower-case UUID). Malformed: 400.
    #[param(format = Uuid, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    id: String,
}

/// `{id}/cells/{cell_id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // describes the path; handlers parse it with `CellId::parse`
pub(crate) struct CellPath {
    /// Notebook id (hyphenated lower-case UUID). Malformed: 400.
    #[param(format = Uuid, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    id: String,
    /// Cell id (nbformat pattern). Not in this notebook: 404.
    #[param(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    cell_id: String,
}

/// `{id}/members/{user_id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // describes the path; handlers parse it with `MemberId::parse`
pub(crate) struct MemberPath {
    /// Notebook id (hyphenated lower-case UUID). Malformed: 400.
    #[param(format = Uuid, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    id: String,
    /// Clerk user, organization or machine id (`user_...`, `org_...`, `mch_...`): at most 128
    /// characters, no whitespace or control characters. Any other shape: 400.
    #[param(pattern = "^(user|org|mch)_[^\\s\\x00-\\x1f\\x7f-\\x9f]{1,123}$")]
    user_id: String,
}

/// `If-Match` on a rename.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // describes the header; `notebooks::if_match` parses it
pub(crate) struct IfMatch {
    /// `"<version>"` (the `ETag`; a `W/` prefix, no quotes and `*` are accepted).
    /// The notebook is renamed only if it is still at that version, else 412.
    #[param(rename = "If-Match", value_type = String, required = false,
        pattern = "^(\\*|(W/)?(\"[0-9]{1,18}\"|[0-9]{1,18}))$")]
    if_match: Option<String>,
}
