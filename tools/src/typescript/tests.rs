#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use serde_json::{Map, json};

use super::{schema::*, *};

fn ty(schema: Value) -> String {
    schema_to_type(&schema)
}

/// `{"key": inner, ...extra}` without `json!`, which would serialise `inner` recursively.
fn wrap(inner: Value, key: &str, extra: Value) -> Value {
    let mut map = match extra {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    map.insert(key.to_owned(), inner);
    Value::Object(map)
}

fn tool<'a>(ident: &'a str, description: Option<&'a str>, input: &'a Value) -> ToolDecl<'a> {
    ToolDecl { ident, name: ident, description, input_schema: input, output_schema: None }
}

/// Every `/**` opens a comment that its own `*/` closes: no text closes a comment early.
fn assert_comments_well_formed(text: &str) {
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        let after = &rest[start + 2..];
        let end = after.find("*/").expect("unterminated comment");
        rest = &after[end + 2..];
    }
    assert!(!rest.contains("*/"), "stray comment closer in {rest:?}");
}

#[test]
fn primitive_types() {
    assert_eq!(ty(json!({"type": "string"})), "string");
    assert_eq!(ty(json!({"type": "number"})), "number");
    assert_eq!(ty(json!({"type": "integer"})), "number");
    assert_eq!(ty(json!({"type": "boolean"})), "boolean");
    assert_eq!(ty(json!({"type": "null"})), "null");
    assert_eq!(ty(json!({"type": "string", "format": "date-time"})), "string");
}

#[test]
fn type_arrays_are_unions() {
    assert_eq!(ty(json!({"type": ["string", "null"]})), "string | null");
    assert_eq!(ty(json!({"type": ["integer", "number"]})), "number");
    assert_eq!(ty(json!({"type": ["string", "wat"]})), "unknown");
    assert_eq!(ty(json!({"type": []})), "never");
}

#[test]
fn empty_true_and_false_schemas() {
    assert_eq!(ty(json!({})), "unknown");
    assert_eq!(ty(json!(true)), "unknown");
    assert_eq!(ty(json!(false)), "never");
    assert_eq!(ty(json!({"description": "anything"})), "unknown");
}

#[test]
fn objects_with_required_and_optional_properties() {
    let schema = json!({
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["a"]
    });
    assert_eq!(ty(schema), "{ a: string; b?: number }");
}

#[test]
fn bare_and_closed_objects() {
    assert_eq!(ty(json!({"type": "object"})), "{ [key: string]: unknown }");
    assert_eq!(ty(json!({"type": "object", "properties": {}})), "{}");
    assert_eq!(ty(json!({"type": "object", "additionalProperties": false})), "{ [key: string]: never }");
    assert_eq!(
        ty(json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false})),
        "{ a?: string }"
    );
}

#[test]
fn property_descriptions_become_doc_comments() {
    let schema = json!({
        "type": "object",
        "properties": {
            "a": {"type": "string", "description": "The a."},
            "b": {"type": "object", "properties": {"c": {"type": "boolean", "description": "Line one.\nLine two."}}}
        },
        "required": ["a", "b"]
    });
    let expected = "{\n  /** The a. */\n  a: string;\n  b: {\n    /**\n     * Line one.\n     * Line two.\n     */\n    c?: boolean;\n  };\n}";
    assert_eq!(ty(schema), expected);
}

#[test]
fn title_is_the_fallback_description() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string", "title": "A title"}}});
    assert_eq!(ty(schema), "{\n  /** A title */\n  a?: string;\n}");
}

#[test]
fn additional_properties_become_index_signatures() {
    assert_eq!(ty(json!({"type": "object", "additionalProperties": true})), "{ [key: string]: unknown }");
    assert_eq!(
        ty(json!({"type": "object", "additionalProperties": {"type": "number"}})),
        "{ [key: string]: number }"
    );
    assert_eq!(
        ty(json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true})),
        "{ a?: string; [key: string]: unknown }"
    );
    // Named properties must fit the index signature for the type to be valid TypeScript.
    assert_eq!(
        ty(json!({
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "additionalProperties": {"type": "number"}
        })),
        "{ a?: string; [key: string]: number | string | undefined }"
    );
    assert_eq!(
        ty(json!({
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "required": ["a"],
            "additionalProperties": {"type": "string"}
        })),
        "{ a: string; [key: string]: string }"
    );
    assert_eq!(
        ty(json!({
            "type": "object",
            "properties": {"a": {"type": "object", "properties": {"b": {"type": "string", "description": "B."}}}},
            "additionalProperties": {"type": "number"}
        })),
        "{\n  a?: {\n    /** B. */\n    b?: string;\n  };\n  [key: string]: unknown;\n}"
    );
    assert_eq!(
        ty(json!({"type": "object", "patternProperties": {"^x-": {"type": "string"}}})),
        "{ [key: string]: string }"
    );
}

#[test]
fn arrays_and_tuples() {
    assert_eq!(ty(json!({"type": "array", "items": {"type": "string"}})), "string[]");
    assert_eq!(ty(json!({"type": "array"})), "unknown[]");
    assert_eq!(ty(json!({"type": "array", "items": {"type": ["string", "number"]}})), "(string | number)[]");
    assert_eq!(
        ty(json!({"type": "array", "items": {"type": "array", "items": {"type": "null"}}})),
        "null[][]"
    );
    assert_eq!(ty(json!({"type": "array", "items": false})), "[]");
    assert_eq!(
        ty(json!({"type": "array", "prefixItems": [{"type": "number"}, {"type": "string"}]})),
        "[number, string]"
    );
    assert_eq!(
        ty(json!({"type": "array", "prefixItems": [{"type": "number"}], "items": {"type": "boolean"}})),
        "[number, ...boolean[]]"
    );
    assert_eq!(
        ty(json!({"type": "array", "items": [{"type": "number"}], "additionalItems": {"type": "string"}})),
        "[number, ...string[]]"
    );
    assert_eq!(ty(json!({"items": {"type": "number"}})), "number[]");
}

#[test]
fn enums_and_consts_are_literals() {
    assert_eq!(ty(json!({"type": "string", "enum": ["a", "b\"c"]})), r#""a" | "b\"c""#);
    assert_eq!(ty(json!({"enum": [1, -2.5, true, null]})), "1 | -2.5 | true | null");
    assert_eq!(ty(json!({"const": "fixed"})), r#""fixed""#);
    assert_eq!(ty(json!({"const": {"k": [1, "x"]}})), r#"{ k: [1, "x"] }"#);
    assert_eq!(ty(json!({"enum": []})), "never");
    assert_eq!(ty(json!({"type": "array", "items": {"enum": [-1, 2]}})), "(-1 | 2)[]");
    assert_eq!(ty(json!({"type": "array", "items": {"const": -1}})), "(-1)[]");
    assert_eq!(ty(json!({"enum": ["line\nbreak", "\u{2028}"]})), r#""line\nbreak" | "\u2028""#);
}

#[test]
fn any_of_one_of_and_all_of() {
    assert_eq!(ty(json!({"anyOf": [{"type": "string"}, {"type": "null"}]})), "string | null");
    assert_eq!(ty(json!({"oneOf": [{"type": "number"}, {"type": "boolean"}]})), "number | boolean");
    assert_eq!(
        ty(json!({"allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}},
            {"type": "object", "properties": {"b": {"type": "string"}}}
        ]})),
        "{ a?: string } & { b?: string }"
    );
    assert_eq!(
        ty(json!({"allOf": [{"anyOf": [{"type": "string"}, {"type": "number"}]}, {"const": 1}]})),
        "(string | number) & 1"
    );
    // Validation-only branches add nothing.
    assert_eq!(
        ty(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "anyOf": [{"required": ["a"]}, {}]})
        ),
        "{ a?: string }"
    );
    // A bare `type: object` gives way to the composed types.
    assert_eq!(
        ty(
            json!({"type": "object", "oneOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {"type": "number"}}}]})
        ),
        "{ a?: string } | { b?: number }"
    );
    assert_eq!(ty(json!({"anyOf": [{"type": "string"}, {}]})), "unknown");
    assert_eq!(ty(json!({"allOf": [{"type": "string"}, false]})), "never");
}

#[test]
fn nullable() {
    assert_eq!(ty(json!({"type": "string", "nullable": true})), "string | null");
    assert_eq!(ty(json!({"type": "string", "nullable": false})), "string");
    assert_eq!(ty(json!({"type": ["string", "null"], "nullable": true})), "string | null");
    assert_eq!(ty(json!({"nullable": true})), "unknown");
}

#[test]
fn refs_are_inlined() {
    let schema = json!({
        "type": "object",
        "properties": {"old": {"$ref": "#/definitions/Id"}, "owner": {"$ref": "#/$defs/User"}},
        "required": ["owner"],
        "$defs": {"User": {"type": "object", "properties": {"login": {"type": "string"}}, "required": ["login"]}},
        "definitions": {"Id": {"type": "integer"}}
    });
    assert_eq!(ty(schema), "{ old?: number; owner: { login: string } }");
    assert_eq!(ty(json!({"$ref": "#/$defs/Missing"})), "unknown");
    assert_eq!(ty(json!({"$ref": "https://example.com/schema.json"})), "unknown");
    assert_eq!(ty(json!({"$ref": 7})), "unknown");
    assert_eq!(
        ty(json!({"$ref": "#/$defs/S", "nullable": true, "$defs": {"S": {"type": "string"}}})),
        "string | null"
    );
}

#[test]
fn recursive_refs_are_unrolled_once_then_unknown() {
    let schema = json!({
        "$ref": "#/$defs/Node",
        "$defs": {"Node": {
            "type": "object",
            "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
        }}
    });
    assert_eq!(ty(schema), "{ children?: { children?: unknown[] }[] }");
    let root_recursion = json!({"type": "object", "properties": {"self": {"$ref": "#"}}});
    assert_eq!(ty(root_recursion), "{ self?: { self?: unknown } }");
    let mutual = json!({
        "$ref": "#/$defs/A",
        "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}
    });
    assert_eq!(ty(mutual), "unknown");
}

#[test]
fn odd_property_names_are_quoted() {
    let schema = json!({
        "type": "object",
        "properties": {"$ok_1": {"type": "string"}, "a-b": {"type": "string"}, "1x": {}, "": {}, "é": {}, "q\"": {}},
        "required": ["$ok_1", "a-b", "1x", "", "é", "q\""]
    });
    let out = ty(schema);
    for member in [
        "$ok_1: string",
        r#""a-b": string"#,
        r#""1x": unknown"#,
        r#""": unknown"#,
        r#""é": unknown"#,
        r#""q\"": unknown"#,
    ] {
        assert!(out.contains(member), "{member} missing from {out}");
    }
}

#[test]
fn required_names_without_schemas_are_unknown() {
    assert_eq!(
        ty(json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b", "b"]})),
        "{ a: string; b: unknown }"
    );
}

#[test]
fn descriptions_cannot_close_the_comment() {
    let schema = json!({
        "type": "object",
        "properties": {"a": {"type": "string", "description": "evil */ declare const x: 1; /*"}}
    });
    let out = ty(schema);
    assert!(out.contains(r"evil *\/ declare const x: 1; /*"), "{out}");
    assert_comments_well_formed(&out);
    // A comment closer assembled by removing control characters is still escaped.
    let out = ty(json!({"type": "object", "properties": {"a": {"description": "*\u{0}/\u{202e}x"}}}));
    assert!(out.contains(r"*\/x"), "{out}");
    assert_comments_well_formed(&out);
}

#[test]
fn long_descriptions_are_truncated() {
    let long = "word ".repeat(1000);
    let out = ty(json!({"type": "object", "properties": {"a": {"description": long}}}));
    assert!(out.contains('…'));
    assert!(out.len() < 800, "{}", out.len());
    // Multi-byte text is cut on a char boundary.
    let out = ty(json!({"type": "object", "properties": {"a": {"description": "é".repeat(5000)}}}));
    assert_eq!(out.matches('é').count(), MAX_DESCRIPTION_CHARS);
}

#[test]
fn deep_nesting_is_capped() {
    // (Far deeper than the cap, and than serde_json's parser allows, but not so deep that dropping
    // the recursive `Value` overflows a test thread's stack.)
    let mut schema = json!({"type": "string"});
    for _ in 0..2000 {
        schema = wrap(schema, "items", json!({"type": "array"}));
    }
    let out = ty(schema);
    assert!(out.starts_with("unknown[]"), "{out}");
    assert_eq!(out.matches("[]").count(), MAX_DEPTH + 1);

    let mut schema = json!({"type": "string"});
    for _ in 0..500 {
        let properties = wrap(schema, "x", json!({}));
        schema = wrap(properties, "properties", json!({"type": "object", "required": ["x"]}));
    }
    let out = ty(schema);
    assert!(out.contains("x: unknown"));
    assert!(out.len() < 10_000);

    let mut schema = json!({"type": "string"});
    for _ in 0..500 {
        schema = wrap(Value::Array(vec![schema, json!({"type": "null"})]), "anyOf", json!({}));
    }
    assert_eq!(ty(schema), "unknown");
}

#[test]
fn exponential_refs_are_bounded() {
    let mut defs = Map::new();
    for i in 0..40 {
        let next = json!({"$ref": format!("#/$defs/L{}", i + 1)});
        defs.insert(
                format!("L{i}"),
                json!({"type": "object", "properties": {"a": next, "b": next, "c": next, "d": next}, "required": ["a", "b", "c", "d"]}),
            );
    }
    defs.insert("L40".to_owned(), json!({"type": "string"}));
    let schema = json!({"$ref": "#/$defs/L0", "$defs": defs});
    let out = ty(schema.clone());
    assert!(out.len() < 2_000_000, "{}", out.len());
    assert!(out.contains("unknown"));
    assert_eq!(out, ty(schema), "deterministic");
}

#[test]
fn malformed_schemas_do_not_panic() {
    let cases = [
        json!(null),
        json!(42),
        json!("string"),
        json!([]),
        json!({"type": 42}),
        json!({"type": "object", "properties": "nope", "required": {"a": 1}}),
        json!({"type": "object", "properties": {"a": 5, "b": null, "c": []}, "required": [1, null, "a"]}),
        json!({"type": "array", "items": 3, "prefixItems": "x"}),
        json!({"enum": "not-an-array"}),
        json!({"anyOf": "x", "oneOf": {}, "allOf": 1}),
        json!({"anyOf": []}),
        json!({"allOf": []}),
        json!({"$ref": "#/$defs/\u{0}~2"}),
        json!({"$ref": "#"}),
        json!({"$ref": ""}),
        json!({"additionalProperties": 1, "patternProperties": {"x": 2}}),
    ];
    for case in cases {
        let out = schema_to_type(&case);
        assert!(!out.is_empty(), "{case}");
    }
    assert_eq!(ty(json!({"anyOf": []})), "never");
    assert_eq!(ty(json!({"allOf": []})), "unknown");
    assert_eq!(ty(json!({"$ref": "#"})), "unknown");
}

#[test]
fn github_create_issue() {
    let input = json!({
        "type": "object",
        "properties": {
            "assignees": {"type": "array", "items": {"type": "string"}, "description": "Usernames to assign to this issue"},
            "body": {"type": "string", "description": "Issue body content"},
            "labels": {"type": "array", "items": {"type": "string"}, "description": "Labels to apply to this issue"},
            "milestone": {"type": "number", "description": "Milestone number"},
            "owner": {"type": "string", "description": "Repository owner"},
            "repo": {"type": "string", "description": "Repository name"},
            "title": {"type": "string", "description": "Issue title"}
        },
        "required": ["owner", "repo", "title"],
        "additionalProperties": false,
        "$schema": "http://json-schema.org/draft-07/schema#"
    });
    let decl =
        tool_declaration(&tool("create_issue", Some("Create a new issue in a GitHub repository"), &input));
    let expected = "/**
 * Create a new issue in a GitHub repository
 * @param args.assignees Usernames to assign to this issue
 * @param args.body Issue body content
 * @param args.labels Labels to apply to this issue
 * @param args.milestone Milestone number
 * @param args.owner Repository owner
 * @param args.repo Repository name
 * @param args.title Issue title
 */
create_issue(args: {
  assignees?: string[];
  body?: string;
  labels?: string[];
  milestone?: number;
  owner: string;
  repo: string;
  title: string;
}): Promise<unknown>;";
    assert_eq!(decl, expected);
}

#[test]
fn time_server_convert_time_with_output_schema() {
    let input = json!({
        "type": "object",
        "properties": {
            "source_timezone": {"type": "string", "description": "Source IANA timezone name"},
            "target_timezone": {"type": "string", "description": "Target IANA timezone name"},
            "time": {"type": "string", "description": "Time to convert in 24-hour format (HH:MM)"}
        },
        "required": ["source_timezone", "time", "target_timezone"]
    });
    let output = json!({
        "type": "object",
        "properties": {
            "difference": {"type": "string"},
            "format": {"type": "string", "enum": ["24h", "12h"], "description": "Clock format"}
        },
        "required": ["difference", "format"]
    });
    let decl = tool_declaration(&ToolDecl {
        ident: "convert_time",
        name: "convert_time",
        description: Some("Convert time between timezones"),
        input_schema: &input,
        output_schema: Some(&output),
    });
    let expected = r#"/**
 * Convert time between timezones
 * @param args.source_timezone Source IANA timezone name
 * @param args.target_timezone Target IANA timezone name
 * @param args.time Time to convert in 24-hour format (HH:MM)
 */
convert_time(args: { source_timezone: string; target_timezone: string; time: string }): Promise<{
  difference: string;
  /** Clock format */
  format: "24h" | "12h";
}>;"#;
    assert_eq!(decl, expected);
}

#[test]
fn echo_declaration_and_optional_args() {
    let input = json!({"type": "object", "properties": {"text": {"type": "string", "description": "The text."}}, "required": ["text"]});
    assert_eq!(
        tool_declaration(&tool("echo", Some("Echoes text back."), &input)),
        "/**\n * Echoes text back.\n * @param args.text The text.\n */\necho(args: { text: string }): Promise<unknown>;"
    );
    let input = json!({"type": "object", "properties": {"limit": {"type": "integer"}}});
    assert_eq!(
        tool_declaration(&tool("list", None, &input)),
        "list(args?: { limit?: number }): Promise<unknown>;"
    );
    let input = json!({"type": "object"});
    assert_eq!(
        tool_declaration(&tool("ping", Some("Ping."), &input)),
        "/** Ping. */\nping(args?: { [key: string]: unknown }): Promise<unknown>;"
    );
}

#[test]
fn tool_names_differing_from_idents_are_noted_and_odd_idents_quoted() {
    let input = json!({});
    let decl = tool_declaration(&ToolDecl {
        ident: "get_file",
        name: "get-file",
        description: None,
        input_schema: &input,
        output_schema: None,
    });
    assert_eq!(decl, "/** MCP tool `get-file`. */\nget_file(args?: unknown): Promise<unknown>;");
    let decl = tool_declaration(&tool("bad-ident", None, &input));
    assert_eq!(decl, "\"bad-ident\"(args?: unknown): Promise<unknown>;");
}

#[test]
fn hostile_tool_text_stays_inside_comments() {
    let input = json!({
        "type": "object",
        "properties": {"x*/y": {"type": "string", "description": "a */ b\r\nc\u{7}"}},
    });
    let decl = tool_declaration(&ToolDecl {
        ident: "t",
        name: "*/ evil",
        description: Some("desc */ }; fetch('x'); /*"),
        input_schema: &input,
        output_schema: None,
    });
    assert_comments_well_formed(&decl);
    assert!(decl.contains(r"@param args.x*\/y a *\/ b c"), "{decl}");
    assert!(decl.contains(r#""x*\/y"?: string"#), "{decl}");
    let all = declarations(&[ServerDecl { ident: "s", name: "*/ server", tools: vec![] }]);
    assert_comments_well_formed(&all);
}

#[test]
fn declarations_of_two_servers() {
    let echo_input =
        json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]});
    let issue_input = json!({
        "type": "object",
        "properties": {"title": {"type": "string", "description": "Issue title"}},
        "required": ["title"]
    });
    let servers = [
        ServerDecl {
            ident: "echo",
            name: "echo-server",
            tools: vec![tool("echo", Some("Echoes."), &echo_input)],
        },
        ServerDecl {
            ident: "github",
            name: "github",
            tools: vec![tool("create_issue", Some("Create an issue."), &issue_input)],
        },
        ServerDecl { ident: "empty", name: "empty", tools: vec![] },
    ];
    let out = declarations(&servers);
    let expected = "/** The error a failed MCP tool call rejects with. */
declare class McpToolError extends Error {
  /** The server the failed call went to. */
  server: string;
  /** The tool that was called. */
  tool: string;
}

/** The MCP tools this code may call, by server: `await mcp.<server>.<tool>(args)`. A failed call rejects with McpToolError. */
declare const mcp: {
  /** MCP server `echo-server`. */
  echo: {
    /** Echoes. */
    echo(args: { text: string }): Promise<unknown>;
  };
  /** MCP server `github`. */
  github: {
    /**
     * Create an issue.
     * @param args.title Issue title
     */
    create_issue(args: { title: string }): Promise<unknown>;
  };
  /** MCP server `empty`. */
  empty: {};
};
";
    assert_eq!(out, expected);
    assert!(out.contains("declare class McpToolError extends Error"));
    assert_comments_well_formed(&out);
    assert_eq!(out, declarations(&servers), "deterministic");
    assert!(declarations(&[]).contains("declare const mcp: {};"));
}

#[test]
fn multi_line_args_are_reindented_inside_declarations() {
    let input = json!({
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "string", "description": "B."}}}},
    });
    let out = declarations(&[ServerDecl { ident: "s", name: "s", tools: vec![tool("t", None, &input)] }]);
    assert!(out.contains("    t(args?: {\n      a?: {\n        /** B. */\n        b?: string;\n      };\n    }): Promise<unknown>;\n"), "{out}");
}
