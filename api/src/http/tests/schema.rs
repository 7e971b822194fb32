//! The OpenAPI document as a test oracle: which operation a request hits, and whether a JSON
//! body validates against the schema the document gives for its status (JSON Schema 2020-12,
//! `#/components/schemas/...` resolved against the whole document, formats checked).

use axum::http::Method;
use serde_json::{Value, json};

use super::super::openapi::DOCUMENT;
use super::super::testing::Reply;

pub fn doc() -> Value {
    serde_json::from_str(DOCUMENT).expect("api/openapi.json is JSON")
}

/// Validates `instance` against `schema` (a schema object of the document).
pub fn validate(doc: &Value, schema: &Value, instance: &Value) -> Result<(), String> {
    let mut root = match schema {
        Value::Object(m) => m.clone(),
        other => panic!("a schema must be an object, got {other}"),
    };
    root.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
    root.insert("components".into(), doc["components"].clone());
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&Value::Object(root))
        .map_err(|e| format!("the schema does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// The document's path template for a concrete path: static segments must be equal, `{x}`
/// takes any one segment; the template with the most static segments wins.
pub fn template(doc: &Value, path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let segs: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .keys()
        .filter_map(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            if ts.len() != segs.len() {
                return None;
            }
            let mut statics = 0;
            for (a, b) in ts.iter().zip(&segs) {
                if a.starts_with('{') {
                    continue;
                }
                if a != b {
                    return None;
                }
                statics += 1;
            }
            Some((statics, t.clone()))
        })
        .max()
        .map(|(_, t)| t)
}

/// Checks a reply against the document: the operation exists, documents the status, and the
/// body validates against that status's schema for its media type. Routes the document does
/// not hold (the JSON 404 of unknown paths) must answer the `Error` schema.
pub fn check(doc: &Value, method: &Method, path: &str, reply: &Reply) {
    let media = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
        .unwrap_or_default();
    let Some(t) = template(doc, path) else {
        assert_eq!(
            media, "application/json",
            "{method} {path}: an undocumented path answers JSON"
        );
        validate(doc, &json!({"$ref": "#/components/schemas/Error"}), &reply.body)
            .unwrap_or_else(|e| panic!("{method} {path} → {}: {e}\n{}", reply.status, reply.text));
        return;
    };
    let op = &doc["paths"][&t][method.as_str().to_ascii_lowercase()];
    if op.is_null() {
        // Method not allowed: the JSON 405.
        assert_eq!(reply.status, 405, "{method} {path}: not in the document");
        validate(doc, &json!({"$ref": "#/components/schemas/Error"}), &reply.body)
            .unwrap_or_else(|e| panic!("{method} {path} → 405: {e}"));
        return;
    }
    let response = &op["responses"][reply.status.as_str()];
    assert!(
        !response.is_null(),
        "{method} {t}: status {} is not documented\n{}",
        reply.status,
        reply.text
    );
    let content = &response["content"][&media];
    assert!(
        !content.is_null(),
        "{method} {t} → {}: media type {media:?} is not documented",
        reply.status
    );
    let instance = if media == "application/json" {
        reply.body.clone()
    } else {
        Value::String(reply.text.clone())
    };
    validate(doc, &content["schema"], &instance).unwrap_or_else(|e| {
        panic!(
            "{method} {path} → {}: the body does not match the document: {e}\n{}",
            reply.status, reply.text
        )
    });
}
