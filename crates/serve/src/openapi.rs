//! The OpenAPI 3.1 document of the API, served at `/api/v1/openapi.json`.
//! Written by hand next to the routes it describes; a test requests every
//! path it lists, so a route cannot be documented without existing.

use serde_json::{Value, json};

fn snapshot_param() -> Value {
    json!({ "name": "snapshot", "in": "path", "required": true,
            "description": "`latest`, a snapshot id, or its first characters",
            "schema": { "type": "string" } })
}

fn path_param() -> Value {
    json!({ "name": "path", "in": "path", "required": true,
            "description": "a path in the snapshot, e.g. `etc/ssh`; `.` and `..` components are refused",
            "schema": { "type": "string" } })
}

fn format_param() -> Value {
    json!({ "name": "format", "in": "query", "schema": { "type": "string", "enum": ["tar", "zip"] },
            "description": "tar (the default) or zip" })
}

fn name_param() -> Value {
    json!({ "name": "name", "in": "path", "required": true, "description": "a job of the config",
            "schema": { "type": "string" } })
}

fn limit_param() -> Value {
    json!({ "name": "limit", "in": "query", "schema": { "type": "integer" }, "description": "at most this many (100)" })
}

fn json_of(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn started() -> Value {
    json_of(
        "started; follow it at /api/v1/operations/{id} or /api/v1/events",
        json!({
        "type": "object", "required": ["operation"], "properties": { "operation": { "type": "integer" } } }),
    )
}

fn error() -> Value {
    json!({ "description": "what went wrong, in one line",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cairn",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A cairn repository's snapshots and the config's jobs. Every request but this document shows a token (Authorization: Bearer, Basic with the token as password, or the dashboard's session cookie); a request that changes something and comes from a browser must come from this server's own page."
        },
        "security": [{ "bearer": [] }, { "basic": [] }, { "session": [] }],
        "paths": {
            "/api/v1/snapshots": { "get": {
                "summary": "The snapshots, oldest first",
                "parameters": [
                    { "name": "host", "in": "query", "schema": { "type": "string" }, "description": "only this host's" },
                    { "name": "tag", "in": "query", "schema": { "type": "string" }, "description": "only those with this tag" },
                    { "name": "path", "in": "query", "schema": { "type": "string" }, "description": "only those of this source path" }
                ],
                "responses": {
                    "200": { "description": "the snapshots", "content": { "application/json": { "schema": {
                        "type": "array", "items": { "$ref": "#/components/schemas/Snapshot" } } } } },
                    "400": error(), "500": error()
                }
            }},
            "/api/v1/snapshots/{snapshot}": { "get": {
                "summary": "One snapshot",
                "parameters": [snapshot_param()],
                "responses": {
                    "200": { "description": "the snapshot", "content": { "application/json": { "schema": {
                        "$ref": "#/components/schemas/Snapshot" } } } },
                    "400": error(), "404": error(), "500": error()
                }
            }, "delete": {
                "summary": "Forget the snapshot (its data stays until `cairn prune`); protected snapshots and `latest` are refused",
                "parameters": [snapshot_param()],
                "responses": { "200": json_of("forgotten", json!({ "type": "object" })), "400": error(), "404": error(), "409": error() }
            }},
            "/api/v1/snapshots/{snapshot}/browse": { "get": {
                "summary": "The top folder of a snapshot",
                "parameters": [snapshot_param()],
                "responses": { "200": { "$ref": "#/components/responses/Folder" }, "404": error(), "500": error() }
            }},
            "/api/v1/snapshots/{snapshot}/browse/{path}": { "get": {
                "summary": "A folder of a snapshot",
                "parameters": [snapshot_param(), path_param()],
                "responses": { "200": { "$ref": "#/components/responses/Folder" },
                               "400": error(), "404": error(), "500": error() }
            }},
            "/api/v1/snapshots/{snapshot}/download/{path}": { "get": {
                "summary": "A file's content; one byte range (`Range: bytes=...`) is answered with 206",
                "parameters": [snapshot_param(), path_param(),
                    { "name": "Range", "in": "header", "schema": { "type": "string" }, "description": "e.g. `bytes=0-1023`" }],
                "responses": {
                    "200": { "description": "the whole file", "content": { "application/octet-stream": {} } },
                    "206": { "description": "the range asked for", "content": { "application/octet-stream": {} } },
                    "400": error(), "404": error(), "416": error(), "500": error()
                }
            }},
            "/api/v1/snapshots/{snapshot}/archive": { "get": {
                "summary": "A whole snapshot as a tar or zip stream",
                "parameters": [snapshot_param(), format_param()],
                "responses": { "200": { "$ref": "#/components/responses/Archive" }, "400": error(), "404": error(), "500": error() }
            }},
            "/api/v1/snapshots/{snapshot}/archive/{path}": { "get": {
                "summary": "A folder (or file) of a snapshot as a tar or zip stream, as `cairn dump --archive` writes it",
                "parameters": [snapshot_param(), path_param(), format_param()],
                "responses": { "200": { "$ref": "#/components/responses/Archive" }, "400": error(), "404": error(), "500": error() }
            }},
            "/api/v1/snapshots/{snapshot}/restore": { "post": {
                "summary": "Restore the snapshot, or one path of it, into a new or empty folder on the server",
                "parameters": [snapshot_param()],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["target"], "additionalProperties": false,
                    "properties": { "target": { "type": "string", "description": "an absolute folder on the server, missing or empty" },
                                    "path": { "type": "string", "description": "a file or folder of the snapshot; its content goes into target" } } } } } },
                "responses": { "202": started(), "400": error(), "404": error(), "409": error(), "422": error() }
            }},
            "/api/v1/repository": { "get": {
                "summary": "The repository: where it is, its snapshots, how it grew",
                "responses": { "200": json_of("the repository", json!({ "type": "object", "properties": {
                    "location": { "type": "string" }, "snapshots": { "type": "integer" },
                    "growth": { "type": "array", "items": { "type": "object", "properties": {
                        "id": { "type": "string" }, "time": { "type": "string", "format": "date-time" },
                        "added": { "type": "integer", "description": "bytes the snapshot added, stored" },
                        "total": { "type": "integer", "description": "bytes added by the snapshots up to this one" },
                        "duration_seconds": { "type": "number" } } } } } })), "500": error() }
            }},
            "/api/v1/repositories": { "get": {
                "summary": "The config's repositories as their newest job runs found them",
                "responses": { "200": json_of("the repositories", json!({ "type": "array", "items": { "type": "object", "properties": {
                    "name": { "type": "string" }, "location": { "type": "string" },
                    "snapshots": { "type": "integer" }, "size_bytes": { "type": "integer", "description": "bytes of its packs" },
                    "at": { "type": "string", "format": "date-time" } } } })), "404": error() }
            }},
            "/api/v1/jobs": { "get": {
                "summary": "The config's jobs and how each stands against its RPO and RTO",
                "responses": { "200": json_of("the jobs", json!({ "type": "array", "items": { "$ref": "#/components/schemas/Job" } })),
                               "404": error(), "500": error() }
            }},
            "/api/v1/jobs/{name}": { "get": {
                "summary": "One job", "parameters": [name_param()],
                "responses": { "200": json_of("the job", json!({ "$ref": "#/components/schemas/Job" })), "404": error() }
            }},
            "/api/v1/jobs/{name}/history": { "get": {
                "summary": "A job's runs (backups, checks, prunes, copies, drills), newest first",
                "parameters": [name_param(), limit_param()],
                "responses": { "200": json_of("the runs", json!({ "type": "array", "items": { "$ref": "#/components/schemas/Run" } })),
                               "404": error() }
            }},
            "/api/v1/jobs/{name}/run": { "post": {
                "summary": "Run the job now (`cairn job run NAME`, as the scheduler runs it)",
                "parameters": [name_param()],
                "responses": { "202": started(), "404": error(), "409": error() }
            }},
            "/api/v1/jobs/{name}/drill": { "post": {
                "summary": "Run the job's restore drill now (`cairn drill NAME`)",
                "parameters": [name_param()],
                "responses": { "202": started(), "404": error(), "409": error() }
            }},
            "/api/v1/drills": { "get": {
                "summary": "The restore drills of every job, newest first", "parameters": [limit_param()],
                "responses": { "200": json_of("the drills", json!({ "type": "array", "items": { "$ref": "#/components/schemas/Run" } })),
                               "404": error() }
            }},
            "/api/v1/operations": { "get": {
                "summary": "Job runs, drills and restores started through this server since it started",
                "responses": { "200": json_of("the operations", json!({ "type": "array", "items": { "$ref": "#/components/schemas/Operation" } })) }
            }},
            "/api/v1/operations/{id}": { "get": {
                "summary": "One operation",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
                "responses": { "200": json_of("the operation", json!({ "$ref": "#/components/schemas/Operation" })), "404": error() }
            }},
            "/api/v1/events": { "get": {
                "summary": "Server-sent events: `operation` (an Operation as JSON) for each running now and every change after",
                "responses": { "200": { "description": "the event stream", "content": { "text/event-stream": {} } } }
            }},
            "/api/v1/session": {
                "get": { "summary": "Who the request is from",
                         "responses": { "200": json_of("the token's name", json!({ "type": "object", "properties": { "who": { "type": "string" } } })) } },
                "post": { "summary": "Open a dashboard session for the token shown (sets an HttpOnly, SameSite=Strict cookie)",
                          "responses": { "200": json_of("the token's name", json!({ "type": "object" })), "401": error(), "403": error() } },
                "delete": { "summary": "End the session", "responses": { "204": { "description": "ended" } } }
            },
            "/metrics": { "get": {
                "summary": "Prometheus metrics of the jobs (as `cairn daemon` serves them)",
                "responses": { "200": { "description": "Prometheus text", "content": { "text/plain": {} } }, "404": error() }
            }},
            "/api/v1/openapi.json": { "get": {
                "summary": "This document",
                "responses": { "200": { "description": "the OpenAPI document", "content": { "application/json": {} } } }
            }}
        },
        "components": {
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
                "Run": { "type": "object", "properties": {
                    "job": { "type": "string" }, "kind": { "type": "string", "enum": ["backup", "check", "prune", "copy", "drill"] },
                    "repository": { "type": "string" }, "started": { "type": "string", "format": "date-time" },
                    "ended": { "type": "string", "format": "date-time" },
                    "outcome": { "type": "string", "enum": ["success", "warning", "failure", "interrupted"] },
                    "exit_code": { "type": "integer" }, "files": { "type": "integer" }, "bytes_read": { "type": "integer" },
                    "bytes_added": { "type": "integer" }, "warnings": { "type": "integer" },
                    "snapshot": { "type": "string" }, "error": { "type": "string" } } },
                "Job": { "type": "object", "properties": {
                    "job": { "type": "string" }, "last": { "$ref": "#/components/schemas/Run" },
                    "last_good": { "$ref": "#/components/schemas/Run" }, "age_seconds": { "type": "number" },
                    "rpo_seconds": { "type": "number" }, "stale": { "type": "boolean" },
                    "last_drill": { "$ref": "#/components/schemas/Run" }, "rto_seconds": { "type": "number" },
                    "problems": { "type": "array", "items": { "type": "string" } },
                    "schedule": { "type": "string" }, "repositories": { "type": "array", "items": { "type": "string" } },
                    "runs": { "type": "integer" }, "success_rate": { "type": "number" },
                    "running": { "type": "integer", "description": "the operation running it now" } } },
                "Operation": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "kind": { "type": "string", "enum": ["job-run", "drill", "restore"] },
                    "what": { "type": "string" }, "who": { "type": "string" },
                    "started": { "type": "string", "format": "date-time" }, "ended": { "type": "string", "format": "date-time" },
                    "state": { "type": "string", "enum": ["running", "succeeded", "failed"] },
                    "done_bytes": { "type": "integer" }, "total_bytes": { "type": "integer" },
                    "log": { "type": "array", "items": { "type": "string" } }, "result": { "type": "string" } } },
                "Snapshot": { "type": "object", "required": ["id", "short_id", "time", "tree", "paths", "hostname"],
                    "properties": {
                        "id": { "type": "string" }, "short_id": { "type": "string" },
                        "time": { "type": "string", "format": "date-time" }, "tree": { "type": "string" },
                        "paths": { "type": "array", "items": { "type": "string" } },
                        "hostname": { "type": "string" }, "username": { "type": "string" },
                        "tags": { "type": "array", "items": { "type": "string" } },
                        "parent": { "type": "string" }, "protected": { "type": "boolean" },
                        "summary": { "type": "object" }
                    } },
                "Entry": { "type": "object", "required": ["name", "type", "size", "mode", "mtime"],
                    "properties": {
                        "name": { "type": "string", "description": "as UTF-8, bytes that are not shown as U+FFFD" },
                        "type": { "type": "string", "enum": ["file", "dir", "symlink", "fifo", "socket", "chardev", "blockdev"] },
                        "size": { "type": "integer" }, "mode": { "type": "integer" },
                        "uid": { "type": "integer" }, "gid": { "type": "integer" },
                        "mtime": { "type": "string", "format": "date-time" },
                        "target": { "type": "string", "description": "a symlink's target" }
                    } }
            },
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "basic": { "type": "http", "scheme": "basic", "description": "the token as the password; the user is its name" },
                "session": { "type": "apiKey", "in": "cookie", "name": "cairn_session" }
            },
            "responses": {
                "Archive": { "description": "the archive, streamed; cut short if reading the snapshot fails on the way",
                    "content": { "application/x-tar": {}, "application/zip": {} } },
                "Folder": { "description": "the folder's entries", "content": { "application/json": { "schema": {
                    "type": "object", "required": ["path", "entries"],
                    "properties": { "path": { "type": "string" },
                                    "entries": { "type": "array", "items": { "$ref": "#/components/schemas/Entry" } } } } } } }
            }
        }
    })
}
