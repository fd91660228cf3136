//! What the conformance fixture lists: its tools and prompts, and the larger elicitation forms
//! (SEP-1034 defaults, SEP-1330 enums), as the suite's scenarios describe them.

use rmcp::model::Tool;
use serde_json::{Value, json};

/// The 2026-07-28 multi-round-trip tools, answered by `Fixture::input_required_call`.
pub const INPUT_REQUIRED_TOOLS: &[&str] = &[
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_tampered_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_capabilities",
    "test_streaming_elicitation",
];

fn no_arguments() -> Value {
    json!({"type": "object", "properties": {}})
}

fn one_string(name: &str, description: &str) -> Value {
    json!({
        "type": "object",
        "properties": {name: {"type": "string", "description": description}},
        "required": [name]
    })
}

pub fn tools() -> Vec<Tool> {
    let mut tools = vec![
        (
            "test_simple_text",
            "Tests simple text content response",
            no_arguments(),
        ),
        (
            "test_image_content",
            "Tests image content response",
            no_arguments(),
        ),
        (
            "test_audio_content",
            "Tests audio content response",
            no_arguments(),
        ),
        (
            "test_embedded_resource",
            "Tests embedded resource content response",
            no_arguments(),
        ),
        (
            "test_multiple_content_types",
            "Tests response with multiple content types (text, image, resource)",
            no_arguments(),
        ),
        (
            "test_tool_with_logging",
            "Tests tool that emits log messages during execution",
            no_arguments(),
        ),
        (
            "test_tool_with_progress",
            "Tests tool that reports progress notifications",
            no_arguments(),
        ),
        (
            "test_error_handling",
            "Tests error response handling",
            no_arguments(),
        ),
        (
            "test_sampling",
            "Tests server-initiated sampling (LLM completion request)",
            one_string("prompt", "The prompt to send to the LLM"),
        ),
        (
            "test_elicitation",
            "Tests server-initiated elicitation (user input request)",
            one_string("message", "The message to show the user"),
        ),
        (
            "test_elicitation_sep1034_defaults",
            "Tests elicitation with default values per SEP-1034",
            no_arguments(),
        ),
        (
            "test_elicitation_sep1330_enums",
            "Tests elicitation with enum schema improvements per SEP-1330",
            no_arguments(),
        ),
        (
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {"address": {"$anchor": "address", "type": "object", "properties": {
                    "street": {"type": "string"}, "city": {"type": "string"}
                }}},
                "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
                "allOf": [{"anyOf": [{"required": ["name"]}, {"required": ["address"]}]}],
                "if": {"properties": {"name": {"const": "Alice"}}},
                "then": {"required": ["address"]},
                "else": {},
                "additionalProperties": false
            }),
        ),
        (
            "test_missing_capability",
            "Needs the client's sampling capability and says so when it was not declared",
            no_arguments(),
        ),
        (
            "test_trigger_tool_change",
            "Changes the tool list (notifications/tools/list_changed)",
            no_arguments(),
        ),
        (
            "test_trigger_prompt_change",
            "Changes the prompt list (notifications/prompts/list_changed)",
            no_arguments(),
        ),
        (
            "test_logging_tool",
            "Logs a line only when the request asked for a log level",
            no_arguments(),
        ),
    ];
    tools.extend(INPUT_REQUIRED_TOOLS.iter().map(|name| {
        (
            *name,
            "Asks the client for input with an InputRequiredResult (SEP-2322)",
            no_arguments(),
        )
    }));
    tools
        .into_iter()
        .map(|(name, description, schema)| {
            let Value::Object(schema) = schema else {
                unreachable!("every input schema above is an object")
            };
            Tool::new(name, description, schema)
        })
        .collect()
}

pub fn prompts() -> Value {
    let argument = |name: &str, description: &str| json!({"name": name, "description": description, "required": true});
    json!([
        {"name": "test_simple_prompt", "title": "Simple Test Prompt",
         "description": "A simple prompt without arguments"},
        {"name": "test_prompt_with_arguments", "title": "Prompt With Arguments",
         "description": "A prompt with required arguments",
         "arguments": [argument("arg1", "First test argument"), argument("arg2", "Second test argument")]},
        {"name": "test_prompt_with_embedded_resource", "title": "Prompt With Embedded Resource",
         "description": "A prompt that includes an embedded resource",
         "arguments": [argument("resourceUri", "URI of the resource to embed")]},
        {"name": "test_prompt_with_image", "title": "Prompt With Image",
         "description": "A prompt that includes image content"},
        {"name": "test_input_required_result_prompt", "title": "Prompt Asking For Input",
         "description": "A prompt that asks the client for context first (SEP-2322)"}
    ])
}

fn form(message: &str, properties: Value) -> Value {
    json!({
        "method": "elicitation/create",
        "params": {
            "mode": "form",
            "message": message,
            "requestedSchema": {"type": "object", "properties": properties, "required": []}
        }
    })
}

pub fn sep1034_request() -> Value {
    form(
        "Please review and update the form fields with defaults",
        json!({
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {"type": "string", "description": "User status",
                       "enum": ["active", "inactive", "pending"], "default": "active"},
            "verified": {"type": "boolean", "description": "Verification status", "default": true}
        }),
    )
}

pub fn sep1330_request() -> Value {
    let titled = |prefix: &str, word: &str| {
        json!([
            {"const": format!("{prefix}1"), "title": format!("First {word}")},
            {"const": format!("{prefix}2"), "title": format!("Second {word}")},
            {"const": format!("{prefix}3"), "title": format!("Third {word}")}
        ])
    };
    form(
        "Please select options from the enum fields",
        json!({
            "untitledSingle": {"type": "string", "description": "Select one option",
                               "enum": ["option1", "option2", "option3"]},
            "titledSingle": {"type": "string", "description": "Select one option with titles",
                             "oneOf": titled("value", "Option")},
            "legacyEnum": {"type": "string", "description": "Select one option (legacy)",
                           "enum": ["opt1", "opt2", "opt3"],
                           "enumNames": ["Option One", "Option Two", "Option Three"]},
            "untitledMulti": {"type": "array", "description": "Select multiple options",
                              "minItems": 1, "maxItems": 3,
                              "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
            "titledMulti": {"type": "array", "description": "Select multiple options with titles",
                            "minItems": 1, "maxItems": 3,
                            "items": {"anyOf": titled("value", "Choice")}}
        }),
    )
}
