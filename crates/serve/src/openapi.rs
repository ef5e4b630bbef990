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
            "description": "A cairn repository's snapshots, read-only."
        },
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
            "/api/v1/openapi.json": { "get": {
                "summary": "This document",
                "responses": { "200": { "description": "the OpenAPI document", "content": { "application/json": {} } } }
            }}
        },
        "components": {
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
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
