//! The OpenAPI 3.1 description served at `/api/v1/openapi.json`.
//!
//! Written by hand as JSON (not derived) because the wire shapes are not
//! plain derives: `Cell` serializes `outputs`/`execution_count` only on code
//! cells, views borrow, and several handlers build their bodies with `json!`.
//! Keeping the description next to DESIGN.md's contract table in one place
//! makes it easy to review against it; `tests/openapi.rs` checks that every
//! route of that table is here, that every operation has an id and a success
//! response, and that every `$ref` resolves.
//!
//! The document is built once, on first use, and shared afterwards.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// Link to the WebSocket protocol section of the design document.
const WS_PROTOCOL_DOC: &str = "DESIGN.md#websocket-protocol-json-text-frames";

/// The document (served by `api::system::openapi`); computed once.
pub fn document() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build).clone()
}

/// Assembles the whole document.
fn build() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "quire",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Multi-user notebook server with Clerk sign-in and live collaborative editing.",
            "description": concat!(
                "REST API (JSON, prefix `/api/v1`) and WebSocket protocol of quire.\n\n",
                "Authentication: `Authorization: Bearer <Clerk session token>` on every route except ",
                "`/healthz`, `/readyz`, `/metrics`, `/api/v1/openapi.json` and the Svix-signed Clerk ",
                "webhook. Browsers may instead send the `__session` cookie when their `Origin` is ",
                "allowed; any `Authorization` header wins over the cookie.\n\n",
                "Every error has the body `{\"error\":{\"code\",\"message\",\"request_id\"}}` ",
                "(plus `current` on cell conflicts) and every response carries `x-request-id`. ",
                "Unknown routes are 404, wrong methods 405, requests running over 30 s 408, ",
                "all with the same error body. 5xx bodies are generic; details go to the server log.\n\n",
                "Limits (defaults, each configurable): JSON body 1 MiB and .ipynb import 16 MiB (413), ",
                "title 200 characters, cell source 1 MiB of UTF-8, 5,000 cells per notebook (422). ",
                "Timestamps are RFC 3339 UTC."
            ),
            "license": {"name": env!("CARGO_PKG_LICENSE"), "identifier": env!("CARGO_PKG_LICENSE")}
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [
            {"name": "system", "description": "Liveness, readiness, metrics and this document."},
            {"name": "me", "description": "The authenticated caller."},
            {"name": "notebooks", "description": "Notebooks, .ipynb import and export."},
            {"name": "cells", "description": "Cell changes; each one is an op with a new notebook version."},
            {"name": "members", "description": "Sharing: owner, editors, viewers."},
            {"name": "realtime", "description": "Live editing over WebSocket."},
            {"name": "webhooks", "description": "Events from Clerk."}
        ],
        "paths": paths(),
        "components": components(),
    })
}

// ---------------------------------------------------------------------------
// Small builders

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn response_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

fn param_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

fn header_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/headers/{name}")})
}

/// `application/json` content with the given schema.
fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// A success response with a JSON body.
fn ok_json(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": json_content(schema)})
}

/// A required JSON request body.
fn json_body(schema_name: &str) -> Value {
    json!({"required": true, "content": json_content(schema_ref(schema_name))})
}

/// The error responses an operation may produce, by status code, taken
/// from the shared `components/responses`.
fn errors(codes: &[u16]) -> Map<String, Value> {
    codes
        .iter()
        .map(|code| {
            let name = match code {
                400 => "BadRequest",
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "NotFound",
                409 => "Conflict",
                412 => "PreconditionFailed",
                413 => "PayloadTooLarge",
                422 => "Unprocessable",
                500 => "Internal",
                503 => "Unavailable",
                other => panic!("no shared response for {other}"),
            };
            (code.to_string(), response_ref(name))
        })
        .collect()
}

/// One operation. `ok` holds the success responses; `errs` the error codes.
struct Op<'a> {
    id: &'a str,
    tag: &'a str,
    summary: &'a str,
    description: &'a str,
    params: Vec<Value>,
    body: Option<Value>,
    ok: Vec<(&'a str, Value)>,
    errs: &'a [u16],
    /// `Some(json!([]))` for public routes; `None` inherits the global bearer.
    security: Option<Value>,
}

impl Op<'_> {
    fn into_value(self) -> Value {
        let mut responses = Map::new();
        for (status, response) in self.ok {
            responses.insert(status.to_string(), response);
        }
        responses.extend(errors(self.errs));
        let mut op = json!({
            "operationId": self.id,
            "tags": [self.tag],
            "summary": self.summary,
            "responses": responses,
        });
        if !self.description.is_empty() {
            op["description"] = json!(self.description);
        }
        if !self.params.is_empty() {
            op["parameters"] = Value::Array(self.params);
        }
        if let Some(body) = self.body {
            op["requestBody"] = body;
        }
        if let Some(security) = self.security {
            op["security"] = security;
        }
        op
    }
}

/// Error codes of a route under `/notebooks/{id}` that only reads.
const READ_ERRORS: &[u16] = &[400, 401, 403, 404, 500, 503];

// ---------------------------------------------------------------------------
// Paths

fn paths() -> Value {
    json!({
        "/healthz": {"get": healthz()},
        "/readyz": {"get": readyz()},
        "/metrics": {"get": metrics()},
        "/api/v1/openapi.json": {"get": openapi()},
        "/api/v1/me": {"get": me()},
        "/api/v1/notebooks": {"get": list_notebooks(), "post": create_notebook()},
        "/api/v1/notebooks/import": {"post": import_notebook()},
        "/api/v1/notebooks/{id}": {
            "parameters": [param_ref("NotebookId")],
            "get": get_notebook(),
            "patch": patch_notebook(),
            "delete": delete_notebook(),
        },
        "/api/v1/notebooks/{id}/ipynb": {
            "parameters": [param_ref("NotebookId")],
            "get": export_ipynb(),
        },
        "/api/v1/notebooks/{id}/cells": {
            "parameters": [param_ref("NotebookId")],
            "post": insert_cell(),
        },
        "/api/v1/notebooks/{id}/cells/{cell_id}": {
            "parameters": [param_ref("NotebookId"), param_ref("CellId")],
            "patch": update_cell(),
            "delete": delete_cell(),
        },
        "/api/v1/notebooks/{id}/cells/{cell_id}/move": {
            "parameters": [param_ref("NotebookId"), param_ref("CellId")],
            "post": move_cell(),
        },
        "/api/v1/notebooks/{id}/members": {
            "parameters": [param_ref("NotebookId")],
            "get": list_members(),
        },
        "/api/v1/notebooks/{id}/members/{user_id}": {
            "parameters": [param_ref("NotebookId"), param_ref("UserId")],
            "put": put_member(),
            "delete": remove_member(),
        },
        "/api/v1/notebooks/{id}/ws": {
            "parameters": [param_ref("NotebookId")],
            "get": websocket(),
        },
        "/api/v1/webhooks/clerk": {"post": clerk_webhook()},
    })
}

fn healthz() -> Value {
    Op {
        id: "healthz",
        tag: "system",
        summary: "Liveness: the process is up",
        description:
            "Needs no token. Always `{\"status\":\"ok\"}` while the process serves requests.",
        params: vec![],
        body: None,
        ok: vec![(
            "200",
            ok_json("The process is alive.", schema_ref("Health")),
        )],
        errs: &[],
        security: Some(json!([])),
    }
    .into_value()
}

fn readyz() -> Value {
    Op {
        id: "readyz",
        tag: "system",
        summary: "Readiness: the store is reachable and verification keys are loaded",
        description: concat!(
            "Needs no token. 200 when both the store and the authentication keys (or, with the ",
            "clients-verify strategy, the store alone) are available; 503 otherwise, with the same ",
            "body shape (not the error body) saying which part is unavailable."
        ),
        params: vec![],
        body: None,
        ok: vec![
            ("200", ok_json("Ready to serve.", schema_ref("Health"))),
            ("503", ok_json("Not ready: the store or the keys are unavailable.", schema_ref("Health"))),
        ],
        errs: &[],
        security: Some(json!([])),
    }
    .into_value()
}

fn metrics() -> Value {
    Op {
        id: "metrics",
        tag: "system",
        summary: "Prometheus metrics",
        description: "Needs no token. Prometheus text exposition format 0.0.4.",
        params: vec![],
        body: None,
        ok: vec![(
            "200",
            json!({
                "description": "Metrics in Prometheus text format.",
                "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}}
            }),
        )],
        errs: &[],
        security: Some(json!([])),
    }
    .into_value()
}

fn openapi() -> Value {
    Op {
        id: "openapi",
        tag: "system",
        summary: "This OpenAPI 3.1 document",
        description: "Needs no token.",
        params: vec![],
        body: None,
        ok: vec![(
            "200",
            ok_json(
                "The OpenAPI document.",
                json!({"type": "object", "description": "An OpenAPI 3.1 document."}),
            ),
        )],
        errs: &[],
        security: Some(json!([])),
    }
    .into_value()
}

fn me() -> Value {
    Op {
        id: "getMe",
        tag: "me",
        summary: "The caller's verified principal",
        description: "Who the server thinks you are, from the verified session token.",
        params: vec![],
        body: None,
        ok: vec![("200", ok_json("The caller.", schema_ref("Me")))],
        errs: &[401, 500, 503],
        security: None,
    }
    .into_value()
}

fn list_notebooks() -> Value {
    Op {
        id: "listNotebooks",
        tag: "notebooks",
        summary: "Notebooks the caller owns or is a member of, newest first",
        description: concat!(
            "Ordered by `created_at`, newest first. Pass `next_cursor` back as `cursor` for the ",
            "next page; `next_cursor` is null on the last page. A bad `limit` or a forged cursor is 400."
        ),
        params: vec![param_ref("Limit"), param_ref("Cursor")],
        body: None,
        ok: vec![("200", ok_json("One page of notebook summaries.", schema_ref("NotebookList")))],
        errs: &[400, 401, 500, 503],
        security: None,
    }
    .into_value()
}

/// 201 with the full notebook, `Location` and `ETag`.
fn created_notebook() -> Value {
    json!({
        "description": "Created; the body is the full notebook as its owner sees it.",
        "headers": {"Location": header_ref("Location"), "ETag": header_ref("ETag")},
        "content": json_content(schema_ref("Notebook")),
    })
}

fn create_notebook() -> Value {
    Op {
        id: "createNotebook",
        tag: "notebooks",
        summary: "Create a notebook, optionally with cells",
        description: concat!(
            "The caller becomes the owner. The new notebook has version 0 and each cell version 1. ",
            "Client-chosen cell ids are honoured (nbformat pattern); a duplicate id is 409. ",
            "`id`, `owner_id`, `version` or any other unknown member is 400."
        ),
        params: vec![],
        body: Some(json_body("CreateNotebook")),
        ok: vec![("201", created_notebook())],
        errs: &[400, 401, 409, 413, 422, 500, 503],
        security: None,
    }
    .into_value()
}

fn import_notebook() -> Value {
    let ipynb = schema_ref("Ipynb");
    Op {
        id: "importNotebook",
        tag: "notebooks",
        summary: "Import an .ipynb (nbformat 4.x; 3 and 2 are upgraded) as a new notebook",
        description: concat!(
            "The body is the .ipynb document itself (any content type is read as JSON; up to 16 MiB ",
            "by default). Title: `?title=`, else the document's `metadata.title`, else \"Untitled\". ",
            "Cell ids, top-level metadata and attachments round-trip. nbformat 3 and 2 documents ",
            "are upgraded to 4.5 as Jupyter does; cells of a type unknown to 4.5 from a newer 4.x ",
            "minor are kept as raw cells. Not a readable nbformat 2-4 document: 400 `invalid_ipynb`."
        ),
        params: vec![json!({
            "name": "title",
            "in": "query",
            "required": false,
            "description": "Title of the new notebook (blank means not given).",
            "schema": {"type": "string"}
        })],
        body: Some(json!({
            "required": true,
            "content": {
                "application/json": {"schema": ipynb.clone()},
                "application/x-ipynb+json": {"schema": ipynb}
            }
        })),
        ok: vec![("201", created_notebook())],
        errs: &[400, 401, 413, 422, 500, 503],
        security: None,
    }
    .into_value()
}

fn get_notebook() -> Value {
    Op {
        id: "getNotebook",
        tag: "notebooks",
        summary: "A notebook with its cells",
        description: "Any member may read. `ETag` is the notebook version, usable in `If-Match`.",
        params: vec![],
        body: None,
        ok: vec![(
            "200",
            json!({
                "description": "The notebook with its cells in order.",
                "headers": {"ETag": header_ref("ETag")},
                "content": json_content(schema_ref("Notebook")),
            }),
        )],
        errs: READ_ERRORS,
        security: None,
    }
    .into_value()
}

fn patch_notebook() -> Value {
    Op {
        id: "patchNotebook",
        tag: "notebooks",
        summary: "Rename a notebook",
        description: concat!(
            "Owner or editor. One op (the notebook version goes up by one). With `If-Match`, the ",
            "rename applies only if the notebook is still at that version, else 412. ",
            "A missing title is 400; a title over the limit 422."
        ),
        params: vec![json!({
            "name": "If-Match",
            "in": "header",
            "required": false,
            "description": "`\"<version>\"` (the `ETag`; `W/` prefix and `*` accepted). Malformed: 400.",
            "schema": {"type": "string"},
            "example": "\"3\""
        })],
        body: Some(json_body("PatchNotebook")),
        ok: vec![(
            "200",
            json!({
                "description": "Renamed; the body is the notebook summary (no cells).",
                "headers": {"ETag": header_ref("ETag")},
                "content": json_content(schema_ref("NotebookSummary")),
            }),
        )],
        errs: &[400, 401, 403, 404, 412, 413, 422, 500, 503],
        security: None,
    }
    .into_value()
}

fn delete_notebook() -> Value {
    Op {
        id: "deleteNotebook",
        tag: "notebooks",
        summary: "Delete a notebook",
        description: concat!(
            "Owner only (others: 403). Removes its cells, members and op log; open sockets ",
            "on it close with 4404."
        ),
        params: vec![],
        body: None,
        ok: vec![("204", json!({"description": "Deleted."}))],
        errs: READ_ERRORS,
        security: None,
    }
    .into_value()
}

fn export_ipynb() -> Value {
    Op {
        id: "exportIpynb",
        tag: "notebooks",
        summary: "Export a notebook as nbformat 4.5",
        description: "Any member may export. Cell ids are the REST ids.",
        params: vec![],
        body: None,
        ok: vec![(
            "200",
            json!({
                "description": "The .ipynb document.",
                "headers": {"Content-Disposition": {
                    "description": "`attachment; filename=\"<id>.ipynb\"`",
                    "schema": {"type": "string"}
                }},
                "content": json_content(schema_ref("Ipynb")),
            }),
        )],
        errs: READ_ERRORS,
        security: None,
    }
    .into_value()
}

fn insert_cell() -> Value {
    Op {
        id: "insertCell",
        tag: "cells",
        summary: "Insert a cell",
        description: concat!(
            "Owner or editor. Without `index` the cell is appended; an out-of-range index is 400. ",
            "A client-chosen `id` must match the nbformat pattern (400) and be unique in the ",
            "notebook (409)."
        ),
        params: vec![],
        body: Some(json_body("InsertCell")),
        ok: vec![(
            "201",
            ok_json("The new cell (version 1).", schema_ref("Cell")),
        )],
        errs: &[400, 401, 403, 404, 409, 413, 422, 500, 503],
        security: None,
    }
    .into_value()
}

fn update_cell() -> Value {
    Op {
        id: "updateCell",
        tag: "cells",
        summary: "Change a cell's source, type or metadata",
        description: concat!(
            "Owner or editor. `metadata` replaces the whole object. With `base_version` (the ",
            "cell's version) a stale edit is 409 and the error carries the `current` cell. ",
            "A cell id not in this notebook is 404."
        ),
        params: vec![],
        body: Some(json_body("UpdateCell")),
        ok: vec![(
            "200",
            ok_json(
                "The cell as committed (its version +1).",
                schema_ref("Cell"),
            ),
        )],
        errs: &[400, 401, 403, 404, 409, 413, 422, 500, 503],
        security: None,
    }
    .into_value()
}

fn delete_cell() -> Value {
    Op {
        id: "deleteCell",
        tag: "cells",
        summary: "Delete a cell",
        description: "Owner or editor. A cell id not in this notebook is 404.",
        params: vec![],
        body: None,
        ok: vec![("204", json!({"description": "Deleted."}))],
        errs: READ_ERRORS,
        security: None,
    }
    .into_value()
}

fn move_cell() -> Value {
    Op {
        id: "moveCell",
        tag: "cells",
        summary: "Move a cell",
        description: concat!(
            "Owner or editor. `index` is the cell's 0-based position after the move (out of range: ",
            "400). The notebook version goes up (even for a move to the same place); the cell's ",
            "does not."
        ),
        params: vec![],
        body: Some(json_body("MoveCell")),
        ok: vec![("200", ok_json("The full notebook after the move.", schema_ref("Notebook")))],
        errs: &[400, 401, 403, 404, 413, 500, 503],
        security: None,
    }
    .into_value()
}

fn list_members() -> Value {
    Op {
        id: "listMembers",
        tag: "members",
        summary: "Owner, editors and viewers of a notebook",
        description: "Any member may read the list. The owner comes first with role `owner`.",
        params: vec![],
        body: None,
        ok: vec![("200", ok_json("The members.", schema_ref("MemberList")))],
        errs: READ_ERRORS,
        security: None,
    }
    .into_value()
}

fn put_member() -> Value {
    Op {
        id: "putMember",
        tag: "members",
        summary: "Add a member or change their role",
        description: concat!(
            "Owner only (others: 403). Any Clerk user id may be added, signed in before or not. ",
            "The owner's own role cannot be changed (400). Not an op: the notebook version does not ",
            "change, but that user's open sockets get a `role` message."
        ),
        params: vec![],
        body: Some(json_body("PutMember")),
        ok: vec![("200", ok_json("The membership.", schema_ref("Member")))],
        errs: &[400, 401, 403, 404, 413, 500, 503],
        security: None,
    }
    .into_value()
}

fn remove_member() -> Value {
    Op {
        id: "removeMember",
        tag: "members",
        summary: "Remove a member",
        description: concat!(
            "Owner only (others: 403). 404 when that user is not a member. The user's open ",
            "sockets on the notebook close with 4403."
        ),
        params: vec![],
        body: None,
        ok: vec![("204", json!({"description": "Removed."}))],
        errs: READ_ERRORS,
        security: None,
    }
    .into_value()
}

fn websocket() -> Value {
    let description = format!(
        concat!(
            "Upgrades to a WebSocket carrying JSON text frames (full protocol: [{doc}]({doc})).\n\n",
            "Authenticate with `Authorization: Bearer` on the upgrade or, from browsers, with a first ",
            "message `{{\"type\":\"auth\",\"token\":\"...\"}}` within 10 s. Tokens in the query are ",
            "never used. `Origin`, when sent, must be allowed (else 403 before the upgrade). With header ",
            "auth a bad token, missing access or keys unavailable are answered before the upgrade ",
            "(401/403/404/503); after first-message auth, with close codes 4401/4403/4404/4503.\n\n",
            "Server -> client: `ready` (notebook with cells, `version`, `epoch`, `role`, `expires_in`; ",
            "or `resumed: true` followed by the missed ops), `op` (every committed change, REST ones ",
            "included, in version order without gaps), `ack` (`ref`, `version`), `error` (`ref`, `code`: ",
            "conflict | not_found | invalid_op | forbidden | rate_limited, `message`, `current`?), ",
            "`auth.ok`, `role`, `presence`, `pong`.\n\n",
            "Client -> server (each with a client-chosen `ref`): `cell.insert`, `cell.update` ",
            "(`base_version` required), `cell.delete`, `cell.move`, `notebook.rename`, `auth` (token ",
            "refresh, same user), `ping`.\n\n",
            "Close codes: 1001 going away, 4400 protocol error, 4401 unauthenticated or token expired, ",
            "4403 access lost or user mismatch, 4404 notebook gone, 4408 no auth in time, 4413 message ",
            "too large, 4429 too slow or too fast, 4503 keys or Clerk unreachable."
        ),
        doc = WS_PROTOCOL_DOC
    );
    let mut op = Op {
        id: "notebookWebSocket",
        tag: "realtime",
        summary: "Live editing session (WebSocket upgrade)",
        description: "",
        params: vec![
            json!({"name": "Upgrade", "in": "header", "required": true,
                   "schema": {"type": "string", "const": "websocket"}}),
            json!({"name": "Connection", "in": "header", "required": true,
                   "schema": {"type": "string"}, "example": "Upgrade"}),
            json!({"name": "Sec-WebSocket-Version", "in": "header", "required": true,
                   "schema": {"type": "string", "const": "13"}}),
            json!({"name": "Sec-WebSocket-Key", "in": "header", "required": true,
                   "schema": {"type": "string"}}),
            json!({"name": "epoch", "in": "query", "required": false,
                   "description": "Resume (with header auth): the epoch of the last `ready`.",
                   "schema": {"type": "string"}}),
            json!({"name": "since", "in": "query", "required": false,
                   "description": "Resume (with header auth): the last version seen.",
                   "schema": {"type": "integer", "format": "int64", "minimum": 0}}),
        ],
        body: None,
        ok: vec![(
            "101",
            json!({
                "description": "Switching Protocols: the WebSocket session starts.",
                "headers": {
                    "Upgrade": {"schema": {"type": "string", "const": "websocket"}},
                    "Sec-WebSocket-Accept": {"schema": {"type": "string"}}
                }
            }),
        )],
        errs: &[400, 401, 403, 404, 500, 503],
        // Header auth is optional: browsers authenticate with the first message.
        security: Some(json!([{"bearerAuth": []}, {}])),
    }
    .into_value();
    op["description"] = json!(description);
    op["externalDocs"] = json!({"description": "WebSocket protocol", "url": WS_PROTOCOL_DOC});
    op
}

fn clerk_webhook() -> Value {
    let svix = |name: &str, description: &str| {
        json!({"name": name, "in": "header", "required": true, "description": description,
               "schema": {"type": "string"}})
    };
    Op {
        id: "clerkWebhook",
        tag: "webhooks",
        summary: "Clerk events, signed by Svix",
        description: concat!(
            "Called by Clerk (through Svix), not by users: no bearer token, the Svix signature over ",
            "the raw body with `CLERK_WEBHOOK_SECRET` authenticates it. A bad signature or timestamp ",
            "is 400 and changes nothing; a replayed `svix-id` is 204 and changes nothing. ",
            "`user.deleted` deletes the user's notebooks and memberships and closes their sockets."
        ),
        params: vec![
            svix("svix-id", "Unique message id (replays are acknowledged and ignored)."),
            svix("svix-timestamp", "Unix seconds when the message was sent."),
            svix("svix-signature", "Space-separated `v1,<base64 HMAC-SHA256>` signatures."),
        ],
        body: Some(json_body("ClerkEvent")),
        ok: vec![("204", json!({"description": "Accepted (or a replay, ignored)."}))],
        errs: &[400, 413],
        security: Some(json!([])),
    }
    .into_value()
}

// ---------------------------------------------------------------------------
// Components

fn components() -> Value {
    json!({
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "Clerk session token (RS256 JWT, about 60 s of life; the Clerk SDK refreshes it)."
            }
        },
        "parameters": parameters(),
        "headers": headers(),
        "responses": responses(),
        "schemas": schemas(),
    })
}

fn parameters() -> Value {
    json!({
        "NotebookId": {
            "name": "id", "in": "path", "required": true,
            "description": "Notebook id (hyphenated UUID). Malformed: 400.",
            "schema": {"type": "string", "format": "uuid"}
        },
        "CellId": {
            "name": "cell_id", "in": "path", "required": true,
            "description": "Cell id (nbformat pattern). Not in this notebook (or malformed): 404.",
            "schema": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}
        },
        "UserId": {
            "name": "user_id", "in": "path", "required": true,
            "description": "Clerk user id (`user_...`); 1 to 128 characters, no whitespace. Malformed: 400.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 128}
        },
        "Limit": {
            "name": "limit", "in": "query", "required": false,
            "description": "Page size, 1 to 200 (else 400).",
            "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
        },
        "Cursor": {
            "name": "cursor", "in": "query", "required": false,
            "description": "Opaque, tamper-evident cursor from a previous page's `next_cursor` (forged: 400).",
            "schema": {"type": "string"}
        }
    })
}

fn headers() -> Value {
    json!({
        "Location": {
            "description": "URL of the new notebook, `/api/v1/notebooks/{id}`.",
            "schema": {"type": "string"}
        },
        "ETag": {
            "description": "The notebook version as a strong entity tag, e.g. `\"3\"`; send it in `If-Match`.",
            "schema": {"type": "string"}
        },
        "RetryAfter": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer", "minimum": 0}
        },
        "WWWAuthenticate": {
            "description": concat!(
                "`Bearer realm=\"quire\"` when no credentials were sent; ",
                "`Bearer realm=\"quire\", error=\"invalid_token\"` when a token was refused."
            ),
            "schema": {"type": "string"}
        }
    })
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": json_content(schema_ref("Error"))})
}

fn responses() -> Value {
    let mut unauthorized = error_response(concat!(
        "Not authenticated. Codes: `unauthenticated` (no credentials of this scheme), ",
        "`token_expired`, `invalid_token` (any other verification failure; the reason is only logged)."
    ));
    unauthorized["headers"] = json!({"WWW-Authenticate": header_ref("WWWAuthenticate")});
    let mut unavailable = error_response(concat!(
        "Temporarily unavailable: `auth_unavailable` (keys or Clerk unreachable) or `unavailable` ",
        "(the store). Retry after `Retry-After` seconds."
    ));
    unavailable["headers"] = json!({"Retry-After": header_ref("RetryAfter")});
    let mut conflict = error_response(concat!(
        "Conflict (`conflict`): a stale `base_version` (the error carries the `current` cell) ",
        "or a duplicate client-chosen cell id (no `current`)."
    ));
    conflict["content"]["application/json"]["example"] = json!({
        "error": {
            "code": "conflict",
            "message": "the cell was changed by someone else",
            "request_id": "0b6c6c2e-2f5e-4d55-9a0c-5a1a3e2d9b10",
            "current": {"id": "intro", "cell_type": "markdown", "source": "# Hello", "metadata": {}, "version": 4}
        }
    });
    json!({
        "BadRequest": error_response(concat!(
            "Bad request: invalid JSON (`invalid_json`), unknown or mistyped members ",
            "(`invalid_request`), malformed ids (`invalid_id`), out-of-range values (`bad_request`)."
        )),
        "Unauthorized": unauthorized,
        "Forbidden": error_response(concat!(
            "`forbidden`: the notebook exists but the caller may not see it, or may not do this ",
            "(viewers writing, non-owners deleting or sharing)."
        )),
        "NotFound": error_response("`not_found`: no such notebook (or it was deleted), cell or member."),
        "Conflict": conflict,
        "PreconditionFailed": error_response(
            "`precondition_failed`: the notebook version is not the one in `If-Match`."
        ),
        "PayloadTooLarge": error_response("`payload_too_large`: the body is over the size limit."),
        "Unprocessable": error_response(
            "`unprocessable`: a value over a limit (title length, cell source size, cells per notebook)."
        ),
        "Internal": error_response("`internal`: an unexpected server error (details only in the log)."),
        "Unavailable": unavailable,
    })
}

/// Notebook properties shared by the summary and the full view.
fn notebook_properties() -> Map<String, Value> {
    let Value::Object(map) = json!({
        "id": {"type": "string", "format": "uuid"},
        "title": {"type": "string"},
        "owner_id": {"type": "string", "description": "Clerk user id of the owner."},
        "role": {"$ref": "#/components/schemas/Role", "description": "The caller's role on this notebook."},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time", "description": "Time of the last op (or creation)."},
        "version": {"type": "integer", "format": "int64", "minimum": 0,
                    "description": "0 at creation, +1 per op."}
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

const NOTEBOOK_FIELDS: [&str; 7] = [
    "id",
    "title",
    "owner_id",
    "role",
    "created_at",
    "updated_at",
    "version",
];

fn schemas() -> Value {
    let summary_props = notebook_properties();
    let mut full_props = notebook_properties();
    full_props.insert(
        "cells".into(),
        json!({"type": "array", "items": schema_ref("Cell"), "description": "In order, position 0 first."}),
    );
    let mut full_required: Vec<&str> = NOTEBOOK_FIELDS.to_vec();
    full_required.push("cells");

    let cell_id = json!({"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$",
                         "description": "Unique in the notebook (nbformat 4.5 pattern)."});
    let metadata = json!({"type": "object", "additionalProperties": true,
                          "description": "nbformat cell metadata."});
    let cell_version = json!({"type": "integer", "format": "int64", "minimum": 1,
                              "description": "1 for a new cell, +1 on every change to it; send as `base_version`."});

    json!({
        "Error": {
            "type": "object",
            "description": "The error body of every failure.",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "request_id"],
                    "properties": {
                        "code": {"type": "string", "description": "Stable, snake_case.",
                                 "examples": ["not_found", "forbidden", "invalid_token", "conflict"]},
                        "message": {"type": "string", "description": "Human-readable; never contains secrets."},
                        "request_id": {"type": "string", "description": "Also in the `x-request-id` header and the server log."},
                        "current": {"$ref": "#/components/schemas/Cell",
                                    "description": "Only on a 409 for a stale `base_version`: the cell as it is now."}
                    }
                }
            }
        },
        "Role": {"type": "string", "enum": ["owner", "editor", "viewer"]},
        "CellType": {"type": "string", "enum": ["code", "markdown", "raw"]},
        "NotebookSummary": {
            "type": "object",
            "description": "A notebook without its cells (lists, PATCH).",
            "required": NOTEBOOK_FIELDS,
            "properties": summary_props,
        },
        "Notebook": {
            "type": "object",
            "description": "A notebook with its cells.",
            "required": full_required,
            "properties": full_props,
        },
        "NotebookList": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": schema_ref("NotebookSummary")},
                "next_cursor": {"type": ["string", "null"],
                                "description": "Pass as `cursor` for the next page; null on the last page."}
            }
        },
        "Cell": {
            "description": "A cell, nbformat-flavoured: `outputs` and `execution_count` exist only on code cells.",
            "oneOf": [schema_ref("CodeCell"), schema_ref("TextCell")],
            "discriminator": {
                "propertyName": "cell_type",
                "mapping": {
                    "code": "#/components/schemas/CodeCell",
                    "markdown": "#/components/schemas/TextCell",
                    "raw": "#/components/schemas/TextCell"
                }
            }
        },
        "CodeCell": {
            "type": "object",
            "required": ["id", "cell_type", "source", "metadata", "outputs", "execution_count", "version"],
            "additionalProperties": false,
            "properties": {
                "id": cell_id.clone(),
                "cell_type": {"type": "string", "const": "code"},
                "source": {"type": "string"},
                "metadata": metadata.clone(),
                "outputs": {"type": "array", "items": {"type": "object"}, "description": "nbformat outputs."},
                "execution_count": {"type": ["integer", "null"]},
                "version": cell_version.clone()
            }
        },
        "TextCell": {
            "type": "object",
            "description": "A markdown or raw cell: no `outputs`, no `execution_count`.",
            "required": ["id", "cell_type", "source", "metadata", "version"],
            "additionalProperties": false,
            "properties": {
                "id": cell_id.clone(),
                "cell_type": {"type": "string", "enum": ["markdown", "raw"]},
                "source": {"type": "string"},
                "metadata": metadata.clone(),
                "version": cell_version
            }
        },
        "NewCell": {
            "type": "object",
            "description": "A cell in `POST /api/v1/notebooks` `cells[]`.",
            "required": ["cell_type"],
            "additionalProperties": false,
            "properties": {
                "cell_type": schema_ref("CellType"),
                "source": {"type": "string", "default": ""},
                "id": cell_id.clone(),
                "metadata": metadata.clone()
            }
        },
        "CreateNotebook": {
            "type": "object",
            "required": ["title"],
            "additionalProperties": false,
            "properties": {
                "title": {"type": "string", "minLength": 1,
                          "description": "Not blank; at most 200 characters by default (422 over it)."},
                "cells": {"type": "array", "items": schema_ref("NewCell"), "default": []}
            }
        },
        "PatchNotebook": {
            "type": "object",
            "required": ["title"],
            "additionalProperties": false,
            "properties": {
                "title": {"type": "string", "minLength": 1,
                          "description": "The new title (required: nothing else can be changed)."}
            }
        },
        "InsertCell": {
            "type": "object",
            "required": ["cell_type"],
            "additionalProperties": false,
            "properties": {
                "cell_type": schema_ref("CellType"),
                "source": {"type": "string", "default": ""},
                "id": cell_id,
                "metadata": metadata.clone(),
                "index": {"type": "integer", "minimum": 0,
                          "description": "0-based position; absent appends; out of range is 400."}
            }
        },
        "UpdateCell": {
            "type": "object",
            "description": "Every member optional; only those given change.",
            "additionalProperties": false,
            "properties": {
                "source": {"type": "string"},
                "cell_type": schema_ref("CellType"),
                "metadata": {"type": "object", "additionalProperties": true,
                             "description": "Replaces the whole metadata object."},
                "base_version": {"type": "integer", "format": "int64",
                                 "description": "The cell version this edit is based on; stale -> 409 with `current`."}
            }
        },
        "MoveCell": {
            "type": "object",
            "required": ["index"],
            "additionalProperties": false,
            "properties": {
                "index": {"type": "integer", "minimum": 0,
                          "description": "The cell's 0-based position after the move."}
            }
        },
        "Member": {
            "type": "object",
            "required": ["user_id", "role"],
            "properties": {
                "user_id": {"type": "string"},
                "role": schema_ref("Role")
            }
        },
        "MemberList": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {"type": "array", "items": schema_ref("Member"),
                          "description": "The owner first (role `owner`), then editors and viewers."}
            }
        },
        "PutMember": {
            "type": "object",
            "required": ["role"],
            "additionalProperties": false,
            "properties": {
                "role": {"type": "string", "enum": ["editor", "viewer"]}
            }
        },
        "Org": {
            "type": "object",
            "required": ["id", "slug", "role", "permissions"],
            "properties": {
                "id": {"type": "string"},
                "slug": {"type": ["string", "null"]},
                "role": {"type": ["string", "null"], "description": "In Clerk's `org:<role>` form."},
                "permissions": {"type": "array", "items": {"type": "string"},
                                "description": "`org:<feature>:<permission>` strings."}
            }
        },
        "Actor": {
            "type": "object",
            "description": "Who is impersonating the user (the `act` claim).",
            "required": ["sub"],
            "properties": {
                "sub": {"type": "string"},
                "iss": {"type": "string"},
                "sid": {"type": "string"}
            }
        },
        "Me": {
            "type": "object",
            "required": ["user_id", "session_id", "org", "actor", "expires_at"],
            "properties": {
                "user_id": {"type": "string"},
                "session_id": {"type": "string"},
                "org": {"oneOf": [schema_ref("Org"), {"type": "null"}],
                        "description": "The session's active organization, or null."},
                "actor": {"oneOf": [schema_ref("Actor"), {"type": "null"}],
                          "description": "The impersonator, or null."},
                "expires_at": {"type": "string", "format": "date-time",
                               "description": "The token's `exp`."}
            }
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "store": {"type": "string", "enum": ["ok", "unavailable"],
                          "description": "Only on /readyz."},
                "auth": {"type": "string", "enum": ["ok", "unavailable"],
                         "description": "Only on /readyz."}
            }
        },
        "Ipynb": {
            "type": "object",
            "description": "An nbformat 4.x notebook document (export writes 4.5).",
            "required": ["nbformat", "nbformat_minor", "cells"],
            "properties": {
                "nbformat": {"type": "integer", "const": 4},
                "nbformat_minor": {"type": "integer", "minimum": 0},
                "metadata": {"type": "object", "additionalProperties": true},
                "cells": {"type": "array", "items": {"type": "object"}}
            }
        },
        "ClerkEvent": {
            "type": "object",
            "description": "A Clerk webhook event, e.g. `user.deleted`.",
            "required": ["type", "data"],
            "properties": {
                "type": {"type": "string", "examples": ["user.deleted"]},
                "object": {"type": "string", "const": "event"},
                "data": {"type": "object", "additionalProperties": true}
            }
        }
    })
}
