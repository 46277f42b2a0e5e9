//! The OpenAPI document of `GET /openapi/v1.json`: the container's operations,
//! parameters and result shapes.

use serde_json::{json, Value};

fn query(name: &str, description: &str, repeated: bool) -> Value {
    let schema = if repeated {
        json!({"type": "array", "items": {"type": "string"}})
    } else {
        json!({"type": "string"})
    };
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn parameters() -> Value {
    json!([
        {"name": "apiName", "in": "path", "required": true, "description": "The downstream API (a name under DownstreamApis).", "schema": {"type": "string"}},
        query("AgentIdentity", "The identity of the agent.", false),
        query("AgentUsername", "The username (UPN) of the agent user.", false),
        query("AgentUserId", "The object id of the agent user (a GUID).", false),
        query("optionsOverride.Scopes", "Scopes to request instead of the configured ones (repeat for several).", true),
        query("optionsOverride.RequestAppToken", "true: an app-only token.", false),
        query("optionsOverride.RelativePath", "The path below the API's BaseUrl.", false),
        query("optionsOverride.HttpMethod", "The downstream call's method.", false),
        query("optionsOverride.AcquireTokenOptions.Tenant", "The tenant (a GUID) of app-only and agent tokens.", false),
        query("optionsOverride.AcquireTokenOptions.ForceRefresh", "Accepted; the caches renew tokens before they expire.", false),
    ])
}

fn problem() -> Value {
    json!({"description": "Problem details (RFC 7807)", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}})
}

fn op(id: &str, summary: &str, result: &str, secured: bool) -> Value {
    let mut o = json!({
        "operationId": id,
        "summary": summary,
        "parameters": parameters(),
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{result}")}}}},
            "400": problem(),
            "401": problem(),
        }
    });
    if secured {
        o["security"] = json!([{"Bearer": []}]);
    }
    o
}

/// The document.
pub(crate) fn document() -> Value {
    let header = "AuthorizationHeaderResult";
    let downstream = "DownstreamApiResult";
    json!({
        "openapi": "3.0.1",
        "info": {"title": "axum-obo-sidecar (Microsoft Entra SDK container API)", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/healthz": {"get": {"operationId": "Health", "responses": {"200": {"description": "Healthy"}}}},
            "/Validate": {"get": {"operationId": "ValidateAuthorizationHeader", "security": [{"Bearer": []}],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ValidateAuthorizationHeaderResult"}}}}, "400": problem(), "401": {"description": "Unauthorized"}}}},
            "/AuthorizationHeader/{apiName}": {"get": op("AuthorizationHeader", "An authorization header for a configured downstream API, for the caller (On-Behalf-Of).", header, true)},
            "/AuthorizationHeaderUnauthenticated/{apiName}": {"get": op("AuthorizationHeaderUnauthenticated", "An authorization header for a configured downstream API, with the app's own identity.", header, false)},
            "/DownstreamApi/{apiName}": {"post": op("DownstreamApi", "Calls a configured downstream API for the caller.", downstream, true)},
            "/DownstreamApiUnauthenticated/{apiName}": {"post": op("DownstreamApiUnauthenticated", "Calls a configured downstream API with the app's own identity.", downstream, false)},
        },
        "components": {
            "securitySchemes": {"Bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "AuthorizationHeaderResult": {"type": "object", "required": ["authorizationHeader"], "properties": {"authorizationHeader": {"type": "string"}}},
                "DownstreamApiResult": {"type": "object", "required": ["statusCode", "headers"], "properties": {
                    "statusCode": {"type": "integer", "format": "int32"},
                    "headers": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                    "content": {"type": "string", "nullable": true}}},
                "ValidateAuthorizationHeaderResult": {"type": "object", "required": ["protocol", "token", "claims"], "properties": {
                    "protocol": {"type": "string"}, "token": {"type": "string"}, "claims": {"type": "object"}}},
                "ProblemDetails": {"type": "object", "properties": {
                    "type": {"type": "string", "nullable": true}, "title": {"type": "string", "nullable": true},
                    "status": {"type": "integer", "nullable": true}, "detail": {"type": "string", "nullable": true}}}
            }
        }
    })
}
