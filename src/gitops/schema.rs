//! The JSON Schema (draft 2020-12) of one document of the folder, for editors such as the YAML
//! language server. Written as data: one definition per kind, selected by `apiVersion` and
//! `kind`.

use serde_json::{Value, json};

/// Returns the JSON Schema of one YAML document.
pub fn json_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://anomalyd.dev/schemas/gitops-document.json",
        "title": "anomalyd GitOps document",
        "description": "One document of the anomalyd config folder: a Checkstack Healthcheck or \
                        System, an anomalyd Collector or Notifier, or a Checkstack kind that \
                        anomalyd ignores.",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": { "enum": ["checkstack.io/v1alpha1", "anomalyd.dev/v1"] },
            "kind": { "type": "string" },
            "metadata": { "$ref": "#/$defs/metadata" },
            "spec": { "type": "object" }
        },
        "allOf": [
            kind_rule("checkstack.io/v1alpha1", "Healthcheck", "#/$defs/healthcheckSpec"),
            kind_rule("checkstack.io/v1alpha1", "System", "#/$defs/systemSpec"),
            kind_rule("anomalyd.dev/v1", "Collector", "#/$defs/collectorSpec"),
            kind_rule("anomalyd.dev/v1", "Notifier", "#/$defs/notifierSpec")
        ],
        "$defs": definitions()
    })
}

fn kind_rule(api_version: &str, kind: &str, spec: &str) -> Value {
    json!({
        "if": {
            "properties": { "apiVersion": { "const": api_version }, "kind": { "const": kind } },
            "required": ["apiVersion", "kind"]
        },
        "then": { "required": ["spec"], "properties": { "spec": { "$ref": spec } } }
    })
}

fn definitions() -> Value {
    json!({
        "name": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9-]*$",
            "maxLength": 63
        },
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": { "$ref": "#/$defs/name" },
                "title": { "type": "string" },
                "description": { "type": "string" },
                "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                "annotations": { "type": "object", "additionalProperties": { "type": "string" } },
                "tags": { "type": "array", "items": { "type": "string" } }
            },
            "additionalProperties": false
        },
        "qualifiedId": { "type": "string", "pattern": "^[^.]+\\..+$" },
        "direction": {
            "enum": ["higher-is-better", "lower-is-better", "deviation", "dominance"]
        },
        "baselineWindow": {
            "type": "string",
            "pattern": "^[0-9]+[hd]$",
            "description": "<n>h or <n>d, from 1h to 90d"
        },
        "fieldOverride": field_override(),
        "fieldOverrides": {
            "type": "object",
            "description": "Keyed by collectors.<collector id>.<field>; a bare field name is \
                            mapped when exactly one collector of the healthcheck has it.",
            "additionalProperties": { "$ref": "#/$defs/fieldOverride" }
        },
        "healthcheckRef": {
            "type": "object",
            "required": ["kind", "name"],
            "properties": {
                "kind": { "const": "Healthcheck" },
                "name": { "$ref": "#/$defs/name" }
            },
            "additionalProperties": false
        },
        "healthcheckSpec": healthcheck_spec(),
        "systemSpec": system_spec(),
        "collectorSpec": collector_spec(),
        "notifierSpec": notifier_spec()
    })
}

fn field_override() -> Value {
    json!({
        "type": "object",
        "properties": {
            "enabled": { "type": "boolean" },
            "direction": { "$ref": "#/$defs/direction" },
            "sensitivity": { "type": "number", "exclusiveMinimum": 0 },
            "confirmationWindow": { "type": "integer", "minimum": 1 },
            "driftEnabled": { "type": "boolean" },
            "driftThreshold": { "type": "number", "exclusiveMinimum": 0 },
            "minAbsoluteDelta": { "type": "number", "minimum": 0 },
            "minRelativeDelta": { "type": "number", "minimum": 0 }
        },
        "additionalProperties": false
    })
}

fn healthcheck_spec() -> Value {
    json!({
        "type": "object",
        "required": ["strategy", "intervalSeconds", "config"],
        "properties": {
            "strategy": { "$ref": "#/$defs/qualifiedId" },
            "intervalSeconds": { "type": "integer", "minimum": 1 },
            "config": { "type": "object" },
            "collectors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["collectorId"],
                    "properties": {
                        "collectorId": { "$ref": "#/$defs/qualifiedId" },
                        "config": { "type": "object" },
                        "assertions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["field", "operator"],
                                "properties": {
                                    "field": { "type": "string" },
                                    "jsonPath": { "type": "string" },
                                    "operator": { "type": "string" },
                                    "value": {}
                                },
                                "additionalProperties": false
                            }
                        }
                    },
                    "additionalProperties": false
                }
            },
            "anomaly": {
                "type": "object",
                "properties": {
                    "enabled": { "type": "boolean", "default": true },
                    "baselineWindow": { "$ref": "#/$defs/baselineWindow", "default": "7d" },
                    "notify": { "type": "boolean", "default": true },
                    "fieldOverrides": { "$ref": "#/$defs/fieldOverrides" }
                },
                "additionalProperties": false
            }
        },
        "additionalProperties": false
    })
}

fn system_spec() -> Value {
    json!({
        "type": "object",
        "properties": {
            "healthchecks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["ref"],
                    "properties": {
                        "ref": { "$ref": "#/$defs/healthcheckRef" },
                        "degradedThreshold": { "type": "integer", "minimum": 1 },
                        "unhealthyThreshold": { "type": "integer", "minimum": 1 },
                        "satelliteIds": { "type": "array", "items": { "type": "string" } },
                        "includeLocal": { "type": "boolean" },
                        "notificationPolicy": { "type": "object" }
                    },
                    "additionalProperties": false
                }
            },
            "anomaly": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["healthcheckRef"],
                    "properties": {
                        "healthcheckRef": { "$ref": "#/$defs/healthcheckRef" },
                        "enabled": { "type": "boolean" },
                        "baselineWindow": { "$ref": "#/$defs/baselineWindow" },
                        "notify": { "type": "boolean" },
                        "fieldOverrides": { "$ref": "#/$defs/fieldOverrides" }
                    },
                    "additionalProperties": false
                }
            },
            "groups": { "type": "array", "description": "Accepted for Checkstack; not used." },
            "environments": { "type": "array", "description": "Accepted for Checkstack; not used." },
            "dependencies": { "type": "array", "description": "Accepted for Checkstack; not used." }
        },
        "additionalProperties": false
    })
}

fn collector_spec() -> Value {
    json!({
        "type": "object",
        "required": ["id", "fields"],
        "properties": {
            "id": { "$ref": "#/$defs/qualifiedId" },
            "fields": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": { "enum": ["number", "string", "boolean"] },
                        "x-anomaly-enabled": { "type": "boolean" },
                        "x-anomaly-direction": { "$ref": "#/$defs/direction" },
                        "x-anomaly-sensitivity": { "type": "number", "exclusiveMinimum": 0 },
                        "x-anomaly-confirmation-window": { "type": "integer", "minimum": 1 },
                        "x-anomaly-drift-enabled": { "type": "boolean" },
                        "x-anomaly-drift-threshold": { "type": "number", "exclusiveMinimum": 0 },
                        "x-anomaly-min-absolute-delta": { "type": "number", "minimum": 0 },
                        "x-anomaly-min-relative-delta": { "type": "number", "minimum": 0 },
                        "x-chart-unit": { "type": "string" },
                        "x-chart-label": { "type": "string" }
                    }
                }
            }
        },
        "additionalProperties": false
    })
}

fn notifier_spec() -> Value {
    json!({
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": {
                "type": "string",
                "description": "http:// or https:// address; may contain ${{ secrets.NAME }}"
            },
            "headers": {
                "type": "object",
                "propertyNames": { "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" },
                "additionalProperties": { "type": "string" },
                "description": "HTTP header names and values; values may contain \
                                ${{ secrets.NAME }}. Content-Type, Content-Length, \
                                Transfer-Encoding and Idempotency-Key are set by anomalyd."
            },
            "timeoutSeconds": { "type": "integer", "minimum": 1, "maximum": 300, "default": 10 },
            "format": { "enum": ["json", "slack"], "default": "json" },
            "filters": {
                "type": "object",
                "properties": {
                    "systems": { "type": "array", "items": { "$ref": "#/$defs/name" } },
                    "kinds": { "type": "array", "items": { "enum": ["spike", "drift"] } },
                    "minImportance": { "enum": ["info", "warning"], "default": "info" }
                },
                "additionalProperties": false
            }
        },
        "additionalProperties": false
    })
}
