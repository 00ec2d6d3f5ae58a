//! The OpenAPI document as the service checks requests: the routes'
//! annotations (utoipa) give its shape, and this module adds what they
//! cannot say: the vocabularies of the active workflow definition (states,
//! actions, verdicts, agencies, roles, programmes, pièce kinds, waves), the
//! bounds and patterns of the checks (read from the constants the checks
//! use), the headers of the answers, the 503 of every operation that reads
//! the database, and the links a stateful client follows from a deposit.
//!
//! Each refinement names the place it changes; a place that no longer
//! exists is a defect the tests catch (`every_refinement_lands`), so that a
//! renamed field cannot silently lose its rule.

use ami_core::Definition;
use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::dossiers::{MAX_LINE, MAX_SIZE, MAX_TEXT};
use super::error::ApiError;

/// The longest `Idempotency-Key` (bytes of printable ASCII).
pub const MAX_IDEMPOTENCY_KEY: usize = 200;
/// The longest `q` of a list.
pub const MAX_QUERY: usize = 200;
/// Page sizes.
pub const MAX_LIST_LIMIT: u32 = 500;
pub const MAX_FEED_LIMIT: u32 = 1000;

/// The shape of the list cursors (`next_cursor`): base64url, no padding.
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]+$";
/// The shape of the feed's cursors: two numbers that always fit.
pub const FEED_CURSOR_PATTERN: &str = "^[0-9]{1,19}\\.[0-9]{1,18}$";
/// The delay the document's example « demande de complément » gives.
const COMPLEMENT_DAYS: u64 = 30;
/// How many valid deposits the document gives as examples.
const DEPOSIT_EXAMPLES: usize = 30;
/// The largest integer every JSON reader keeps exact (2^53 − 1).
pub const MAX_JSON_INTEGER: u64 = (1 << 53) - 1;

/// The refusal of a list cursor the service did not give: one not even of
/// the documented shape is a bad parameter (400); one of that shape that
/// names no position (or one of a list in another order) is well formed
/// but cannot be served, a 422 `invalid_cursor`.
pub fn cursor_refusal(name: &str, raw: &str) -> ApiError {
    let detail = "Curseur invalide : reprenez le next_cursor d'une page précédente.";
    let well_formed = !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if well_formed {
        ApiError::Unprocessable {
            code: "invalid_cursor".into(),
            field: Some(name.into()),
            detail: detail.into(),
        }
    } else {
        ApiError::bad_field(name, detail)
    }
}

/// The document of the service running `def`.
pub fn document(def: &Definition, today: NaiveDate) -> Value {
    let (doc, misses) = build(def, today);
    for miss in misses {
        // A build defect, caught by the tests; the document is still
        // served without that refinement rather than not at all.
        tracing::error!(place = %miss, "OpenAPI refinement found nothing to refine");
    }
    doc
}

/// The document, and the places a refinement did not find.
fn build(def: &Definition, today: NaiveDate) -> (Value, Vec<String>) {
    let mut doc = serde_json::to_value(super::api().1).unwrap_or_else(|_| json!({}));
    let mut misses = Vec::new();
    vocabularies(&mut doc, def);
    for (pointer, schema) in field_rules() {
        set(&mut doc, &pointer, schema, &mut misses);
    }
    // The form's parts are its fields: any other part is refused.
    put(
        &mut doc,
        "/components/schemas/DepositForm",
        "additionalProperties",
        json!(false),
        &mut misses,
    );
    set(
        &mut doc,
        "/paths/~1workflow/get/responses/200/content/application~1json/schema",
        schema_ref("Workflow"),
        &mut misses,
    );
    parameters(&mut doc);
    responses(&mut doc);
    binary_bodies(&mut doc);
    links(&mut doc, def, today, &mut misses);
    examples(&mut doc, def, &mut misses);
    (doc, misses)
}

fn set(doc: &mut Value, pointer: &str, value: Value, misses: &mut Vec<String>) {
    match doc.pointer_mut(pointer) {
        Some(place) => *place = value,
        None => misses.push(pointer.to_string()),
    }
}

/// Adds `key` to the object at `pointer`.
fn put(doc: &mut Value, pointer: &str, key: &str, value: Value, misses: &mut Vec<String>) {
    match doc.pointer_mut(pointer) {
        Some(Value::Object(place)) => {
            place.insert(key.into(), value);
        }
        _ => misses.push(format!("{pointer}/{key}")),
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(schema: Value) -> Value {
    json!({ "oneOf": [schema, { "type": "null" }] })
}

fn array_of(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

/// A character class (without brackets) of the characters no text field
/// accepts, but for `allowed` (`\t\n\r` in free text).
fn hidden_class(allowed: &[char]) -> String {
    let mut class = String::new();
    for &(from, to) in ami_core::text::HIDDEN_CHARS {
        // Characters past U+FFFF are written in a pattern as surrogate
        // pairs or code points depending on the regex engine (JSON Schema
        // patterns have no `u` flag): those few format characters stay a
        // check of the service alone (422), not of the document.
        if to as u32 > 0xFFFF {
            continue;
        }
        let mut run: Option<(u32, u32)> = None;
        for c in from as u32..=to as u32 {
            let hidden = char::from_u32(c).is_some_and(|c| !allowed.contains(&c));
            run = match (run, hidden) {
                (Some((a, _)), true) => Some((a, c)),
                (None, true) => Some((c, c)),
                (Some(r), false) => {
                    push_range(&mut class, r);
                    None
                }
                (None, false) => None,
            };
        }
        if let Some(r) = run {
            push_range(&mut class, r);
        }
    }
    class
}

fn push_range(class: &mut String, (a, b): (u32, u32)) {
    class.push_str(&format!("\\u{a:04X}"));
    if b > a {
        class.push_str(&format!("-\\u{b:04X}"));
    }
}

/// A one-line text: no control or invisible character, at most
/// [`MAX_LINE`] characters; `required`: not blank either.
fn line(required: bool, description: &str) -> Value {
    let h = hidden_class(&[]);
    if required {
        json!({
            "type": "string", "minLength": 1, "maxLength": MAX_LINE,
            "pattern": format!("^[^{h}]*[^{h}\\s][^{h}]*$"),
            "description": description,
        })
    } else {
        json!({
            "type": "string", "maxLength": MAX_LINE,
            "pattern": format!("^[^{h}]*$"),
            "description": description,
        })
    }
}

/// Free text: line breaks and tabs allowed, at most [`MAX_TEXT`].
fn text(required: bool, description: &str) -> Value {
    let h = hidden_class(&['\t', '\n', '\r']);
    if required {
        json!({
            "type": "string", "minLength": 1, "maxLength": MAX_TEXT,
            "pattern": format!("^[^{h}]*[^{h}\\s][^{h}]*$"),
            "description": description,
        })
    } else {
        json!({
            "type": "string", "maxLength": MAX_TEXT,
            "pattern": format!("^[^{h}]*$"),
            "description": description,
        })
    }
}

fn email() -> Value {
    let h = hidden_class(&[]);
    json!({
        "type": "string", "maxLength": MAX_LINE,
        "pattern": format!("^[^{h}]*@[^{h}]*$"),
        "description": "The porteur's address: the accusé de réception and the decision are sent to it.",
    })
}

fn code_insee() -> Value {
    json!({
        "type": "string", "pattern": "^(?:[0-9]{2}|2[AB])[0-9]{3}$",
        "description": "INSEE code of the commune (official geographic code): 5 characters, 2A/2B for Corsica. A code of no commune is refused with 422 `commune_inconnue`.",
        "examples": ["58194"],
    })
}

fn sha256() -> Value {
    json!({ "type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "Hex SHA-256 of the file." })
}

fn unsigned(max: Option<u64>, description: &str) -> Value {
    let mut s = json!({ "type": "integer", "minimum": 0, "description": description });
    if let Some(max) = max {
        s["maximum"] = json!(max);
    }
    s
}

fn enumeration(values: Vec<Value>, kind: &str, description: String) -> Value {
    json!({ "type": kind, "enum": values, "description": description })
}

fn ids<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> (Vec<Value>, String) {
    let mut values = Vec::new();
    let mut said = Vec::new();
    for (id, label) in it {
        values.push(json!(id));
        said.push(format!("`{id}` ({label})"));
    }
    (values, said.join(", "))
}

/// The vocabularies of the definition, as schemas other schemas refer to.
fn vocabularies(doc: &mut Value, def: &Definition) {
    // Deposits are `POST /dossiers`, pièces `PUT …/pieces/{kind}`: neither
    // goes through `/transitions`.
    let elsewhere: Vec<&str> = def
        .actions()
        .iter()
        .filter(|a| {
            matches!(
                a.effect,
                ami_core::Effect::Create | ami_core::Effect::AttachPiece
            )
        })
        .map(|a| a.id.as_str())
        .collect();
    let committee: Vec<&str> = def.committee_actions().map(|a| a.id.as_str()).collect();
    let mut add = |name: &str, schema: Value| {
        if let Some(schemas) = doc
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
        {
            schemas.insert(name.to_string(), schema);
        }
    };
    let (v, said) = ids(def
        .states()
        .iter()
        .map(|s| (s.id.as_str(), s.label.as_str())));
    add(
        "State",
        enumeration(v, "string", format!("A state of the workflow: {said}.")),
    );
    let (v, said) = ids(def
        .actions()
        .iter()
        .map(|a| (a.id.as_str(), a.label.as_str())));
    add(
        "Action",
        enumeration(v, "string", format!("An action of the workflow: {said}.")),
    );
    let (v, said) = ids(def
        .actions()
        .iter()
        .filter(|a| !elsewhere.contains(&a.id.as_str()))
        .map(|a| (a.id.as_str(), a.label.as_str())));
    add(
        "TransitionAction",
        enumeration(v, "string", format!("An action taken with `POST /dossiers/{{id}}/transitions` (a deposit is `POST /dossiers`, a pièce `PUT /dossiers/{{id}}/pieces/{{kind}}`): {said}.")),
    );
    let (v, said) = ids(def
        .actions()
        .iter()
        .filter(|a| committee.contains(&a.id.as_str()))
        .map(|a| (a.id.as_str(), a.label.as_str())));
    add(
        "CommitteeAction",
        enumeration(
            v,
            "string",
            format!("A decision a committee takes: {said}."),
        ),
    );
    let (v, said) = ids(def
        .verdicts()
        .iter()
        .map(|x| (x.id.as_str(), x.label.as_str())));
    add(
        "Verdict",
        enumeration(v, "string", format!("A verdict of an avis: {said}.")),
    );
    let (v, said) = ids(def
        .agencies()
        .iter()
        .map(|x| (x.id.as_str(), x.label.as_str())));
    add(
        "Agency",
        enumeration(v, "string", format!("An agency: {said}.")),
    );
    let (mut v, said) = ids(def
        .agencies()
        .iter()
        .map(|x| (x.id.as_str(), x.label.as_str())));
    v.push(json!(ami_core::PORTEUR));
    add(
        "Awaited",
        enumeration(v, "string", format!("Who a dossier waits on: an agency ({said}), or `porteur`, the town, while a « demande de complément » is open.")),
    );
    let (v, said) = ids(def
        .roles()
        .iter()
        .map(|x| (x.id.as_str(), x.label.as_str())));
    add(
        "Role",
        enumeration(v, "string", format!("A role in an agency: {said}.")),
    );
    let (v, said) = ids(def
        .programmes()
        .iter()
        .map(|x| (x.id.as_str(), x.label.as_str())));
    add(
        "Programme",
        enumeration(v, "string", format!("A programme of the ANCT: {said}.")),
    );
    let (v, said) = ids(def
        .pieces()
        .iter()
        .map(|x| (x.id.as_str(), x.label.as_str())));
    add(
        "PieceKind",
        enumeration(v, "string", format!("A pièce of the dossier: {said}.")),
    );
    let waves: Vec<Value> = def
        .campaign()
        .waves
        .iter()
        .map(|w| json!(w.number))
        .collect();
    let said: Vec<String> = def
        .campaign()
        .waves
        .iter()
        .map(|w| format!("{} (until {})", w.number, w.closes_on))
        .collect();
    add(
        "Wave",
        enumeration(
            waves,
            "integer",
            format!("A wave of the campaign: {}.", said.join(", ")),
        ),
    );
    add(
        "Departement",
        enumeration(
            ami_core::communes::departements()
                .iter()
                .map(|d| json!(d.code))
                .collect(),
            "string",
            "A département of the official geographic code (`58`, `2A`, `974`).".into(),
        ),
    );
    add(
        "Region",
        enumeration(
            ami_core::communes::regions()
                .iter()
                .map(|r| json!(r.code))
                .collect(),
            "string",
            "A région of the official geographic code (`27`).".into(),
        ),
    );
    add("Workflow", workflow_schema());
}

/// Where a property of a component lives.
fn prop(component: &str, path: &str) -> String {
    let path = path.replace('.', "/properties/");
    format!("/components/schemas/{component}/properties/{path}")
}

/// Each field's rule, as the service checks it.
fn field_rules() -> Vec<(String, Value)> {
    let s = schema_ref;
    let deposit = |c: &str| {
        vec![
            (prop(c, "commune"), line(true, "Name of the commune, as in the official geographic code (« Nevers »); accents, case and hyphens may differ. A name that is not the code's is refused with 422 `commune_incoherente`.")),
            (prop(c, "code_insee"), code_insee()),
            (prop(c, "programmes"), json!({
                "type": "array", "items": s("Programme"), "minItems": 1,
                "description": "The programmes the town applies to; at least one."
            })),
        ]
    };
    let mut rules = deposit("NewDossierBody");
    rules.extend(deposit("ArrivalDossierBody"));
    rules.extend([
        (prop("PorteurBody", "nom"), line(true, "Name of the applicant, e.g. « Ville de Nevers ».")),
        (prop("PorteurBody", "email"), nullable(email())),
        (prop("PieceBody", "kind"), s("PieceKind")),
        (prop("PieceBody", "filename"), line(true, "The file's name.")),
        (prop("PieceBody", "size"), nullable(unsigned(Some(MAX_SIZE), "Size in bytes."))),
        (prop("PieceBody", "sha256"), nullable(sha256())),
        (prop("TransitionBody", "action"), s("TransitionAction")),
        (prop("TransitionBody", "expected_version"), unsigned(Some(MAX_JSON_INTEGER), "The dossier's `version` as last read; checked first (409 when stale).")),
        (prop("TransitionBody", "verdict"), nullable(s("Verdict"))),
        (prop("TransitionBody", "motivation"), nullable(text(false, "Why; required by the actions and verdicts that say so (422 `motivation_requise`)."))),
        (prop("TransitionBody", "comment"), nullable(text(false, "A note for the journal."))),
        (prop("TransitionBody", "pieces"), nullable(array_of(s("PieceKind")))),
        (prop("ArrivalDossierBody", "comment"), nullable(text(false, "A note for the journal."))),
        (prop("ArrivalPieceBody", "kind"), s("PieceKind")),
        (prop("ArrivalAttachBody", "kind"), s("PieceKind")),
        (prop("ArrivalAttachBody", "expected_version"), unsigned(Some(MAX_JSON_INTEGER), "The dossier's version as last read.")),
        (prop("ArrivalAttachBody", "comment"), nullable(text(false, "A note for the journal."))),
        (prop("SetAsideBody", "motivation"), text(true, "Why it is set aside (spam, a question, a duplicate…).")),
        (prop("DecisionBody", "action"), s("CommitteeAction")),
        (prop("DecisionBody", "expected_version"), unsigned(Some(MAX_JSON_INTEGER), "The dossier's `version` as last read.")),
        (prop("DecisionBody", "motivation"), nullable(text(false, "Why; required to refuse."))),
        (prop("MemberBody", "agency"), s("Agency")),
        // What the service answers.
        (prop("DossierView", "state"), s("State")),
        (prop("DossierView", "wave"), s("Wave")),
        (prop("DossierView", "programmes"), array_of(s("Programme"))),
        (prop("DossierView", "awaiting"), array_of(s("Awaited"))),
        (prop("DossierView", "actions"), array_of(s("Action"))),
        (prop("DossierView", "next_step"), s("TransitionAction")),
        (prop("ArrivalPieceBody", "attachment"), unsigned(Some(MAX_JSON_INTEGER), "The index of the attachment in the arrival's `attachments`, from 0.")),
        (prop("ArrivalAttachBody", "attachment"), unsigned(Some(MAX_JSON_INTEGER), "The index of the attachment in the arrival's `attachments`, from 0.")),
        (prop("DepositForm", "dossier"), s("NewDossierBody")),
        (prop("DepositForm", "dossier_candidature"), json!({ "type": "string", "format": "binary", "description": "The file of the dossier de candidature." })),
        (prop("DepositForm", "budget_previsionnel"), json!({ "type": "string", "format": "binary", "description": "The file of the budget prévisionnel." })),
        (prop("PieceView", "kind"), s("PieceKind")),
        (prop("ComplementView", "pieces"), array_of(s("PieceKind"))),
        (prop("ActorView", "agency"), s("Agency")),
        (prop("AvisView", "action"), s("Action")),
        (prop("AvisView", "verdict"), s("Verdict")),
        (prop("DeadlineView", "agency"), s("Agency")),
        (prop("DeadlineView", "action"), s("Action")),
        // A journal keeps what was written: after a change of definition
        // (`ami workflow migrate`), older events name the values of the
        // definition they were written under, and `migration` events record
        // the change itself.
        (prop("HistoryItem", "action"), json!({ "anyOf": [s("Action"), { "const": ami_core::definition::MIGRATION_ACTION }] })),
        (prop("HistoryItem", "from"), nullable(s("State"))),
        (prop("HistoryItem", "to"), s("State")),
        (prop("HistoryItem", "agency"), s("Agency")),
        (prop("HistoryItem", "verdict"), nullable(s("Verdict"))),
        (prop("ActorView", "role"), s("Role")),
        (prop("WaveStats", "wave"), s("Wave")),
        (prop("CommitteeAnswer", "wave"), s("Wave")),
        (prop("Committees", "wave"), s("Wave")),
        (prop("DecisionView", "action"), s("CommitteeAction")),
        (prop("MemberView", "agency"), s("Agency")),
        (prop("ArrivalView", "state"), enumeration(
            ["nouveau", "quarantaine", "traite", "ecarte"].map(|x| json!(x)).to_vec(),
            "string",
            "`nouveau` (to handle), `quarantaine` (could not be read), `traite` (a dossier or a pièce came of it), `ecarte` (set aside).".into())),
        (prop("HandlingView", "how"), enumeration(
            ["depot", "rattachement", "ecarte"].map(|x| json!(x)).to_vec(),
            "string",
            "`depot` (it became a dossier), `rattachement` (a new version of a pièce), `ecarte` (set aside).".into())),
        (prop("MessageView", "kind"), enumeration(
            ["accuse_reception", "decision", "digest"].map(|x| json!(x)).to_vec(),
            "string",
            "The letter: the accusé de réception of a deposit, a decision, or an agency's daily digest.".into())),
        (prop("MessageView", "status"), enumeration(
            ["en_attente", "envoye", "echec", "sans_destinataire"].map(|x| json!(x)).to_vec(),
            "string",
            "`en_attente` (to send, from `next_attempt_at`), `envoye`, `echec` (given up) or `sans_destinataire` (kept, never sent).".into())),
    ]);
    rules
}

/// The JSON of `GET /workflow`: the definition the service runs.
fn workflow_schema() -> Value {
    let s = schema_ref;
    let labelled = |id: Value, extra: Value| {
        let mut props = json!({ "id": id, "label": { "type": "string" } });
        if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({ "type": "object", "required": ["id", "label"], "properties": props })
    };
    json!({
        "type": "object",
        "description": "The workflow definition the service runs, as validated from its TOML.",
        "required": ["version", "campaign", "agencies", "roles", "states", "pieces", "verdicts", "programmes", "actions"],
        "properties": {
            "version": { "type": "string" },
            "campaign": {
                "type": "object",
                "required": ["name", "reference_prefix", "time_zone", "opens_on", "waves"],
                "properties": {
                    "name": { "type": "string" },
                    "reference_prefix": { "type": "string" },
                    "time_zone": { "type": "string" },
                    "calendar": { "type": "string" },
                    "opens_on": { "type": "string", "format": "date" },
                    "waves": array_of(json!({
                        "type": "object", "required": ["number", "closes_on"],
                        "properties": { "number": s("Wave"), "closes_on": { "type": "string", "format": "date" } }
                    })),
                }
            },
            "agencies": array_of(labelled(s("Agency"), json!({}))),
            "roles": array_of(labelled(s("Role"), json!({}))),
            "states": array_of(labelled(s("State"), json!({ "terminal": { "type": "boolean" } }))),
            "pieces": array_of(labelled(s("PieceKind"), json!({
                "required": { "type": "boolean" },
                "accept": array_of(json!({ "type": "string" })),
            }))),
            "verdicts": array_of(labelled(s("Verdict"), json!({
                "requires_motivation": { "type": "boolean" },
                "blocking": { "type": "boolean" },
            }))),
            "programmes": array_of(labelled(s("Programme"), json!({ "avis_action": s("Action") }))),
            "actions": array_of(labelled(s("Action"), json!({
                "from": array_of(s("State")),
                "to": nullable(s("State")),
                "agency": s("Agency"),
                "role": s("Role"),
                "verdict": { "type": "boolean" },
                "motivation": { "type": "boolean" },
            }))),
        }
    })
}

/// Query and header parameters, by name, wherever they appear.
fn parameters(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (_, op) in item.iter_mut() {
            let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                continue;
            };
            for p in params.iter_mut() {
                refine_parameter(path, p);
            }
        }
    }
}

/// A list filter: one value or several separated by commas.
fn comma_list(items: Value) -> Value {
    json!({ "type": "array", "items": items, "minItems": 1 })
}

fn refine_parameter(path: &str, p: &mut Value) {
    // A parameter is sent or not; it is never `null`.
    if let Some(schema) = p.get_mut("schema").and_then(Value::as_object_mut) {
        if schema.get("type") == Some(&json!(["string", "null"])) {
            schema.insert("type".into(), json!("string"));
        }
    }
    let name = p
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let place = p
        .get("in")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(obj) = p.as_object_mut() else { return };
    let mut set_schema = |schema: Value, explode: Option<bool>| {
        obj.insert("schema".into(), schema);
        if let Some(explode) = explode {
            obj.insert("style".into(), json!("form"));
            obj.insert("explode".into(), json!(explode));
        }
    };
    match (place.as_str(), name.as_str()) {
        ("query", "state") if path.starts_with("/arrivals") => set_schema(
            json!({ "type": "string", "enum": ["nouveau", "quarantaine", "traite", "ecarte"] }),
            None,
        ),
        ("query", "cursor") => set_schema(
            json!({ "type": "string", "pattern": CURSOR_PATTERN, "description": "`next_cursor` of the previous page, as given." }),
            None,
        ),
        ("query", "after") => set_schema(
            json!({ "type": "string", "pattern": FEED_CURSOR_PATTERN, "description": "`next_cursor` of the previous page, or a `cursor` of the history." }),
            None,
        ),
        ("query", "state") => set_schema(comma_list(schema_ref("State")), Some(false)),
        ("query", "wave") => set_schema(comma_list(schema_ref("Wave")), Some(false)),
        ("query", "programme") => set_schema(comma_list(schema_ref("Programme")), Some(false)),
        ("query", "awaiting") => set_schema(comma_list(schema_ref("Awaited")), Some(false)),
        ("query", "departement") => set_schema(comma_list(schema_ref("Departement")), Some(false)),
        ("query", "region") => set_schema(comma_list(schema_ref("Region")), Some(false)),
        ("query", "overdue") => set_schema(json!({ "type": "string", "enum": ["true"] }), None),
        ("query", "sort") => set_schema(
            json!({ "type": "string", "enum": ["received", "due"], "default": "received" }),
            None,
        ),
        ("query", "group_by") => set_schema(
            json!({ "type": "string", "enum": ["departement", "region"] }),
            None,
        ),
        ("query", "q") => set_schema(
            json!({ "type": "string", "maxLength": MAX_QUERY, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$" }),
            None,
        ),
        ("query", "limit") => {
            let max = if path == "/events" {
                MAX_FEED_LIMIT
            } else {
                MAX_LIST_LIMIT
            };
            set_schema(
                json!({ "type": "integer", "minimum": 1, "maximum": max }),
                None,
            )
        }
        ("query", "expected_version") => set_schema(
            json!({ "type": "integer", "minimum": 0, "maximum": MAX_JSON_INTEGER }),
            None,
        ),
        ("query", "comment") => set_schema(text(false, "A note for the journal."), None),
        ("path", "kind") => set_schema(schema_ref("PieceKind"), None),
        ("path", "version") => set_schema(
            json!({ "type": "integer", "minimum": 1, "maximum": u32::MAX }),
            None,
        ),
        ("path", "n") if path.starts_with("/waves") => set_schema(schema_ref("Wave"), None),
        ("header", "If-Match") => set_schema(
            json!({ "type": "string", "pattern": "^\"?[0-9]{1,15}\"?$", "description": "The dossier's version as read, e.g. `\"4\"`." }),
            None,
        ),
        ("header", "Content-Disposition") => set_schema(
            json!({ "type": "string", "pattern": "^[\\x20-\\x7E]*$", "description": "`attachment; filename*=UTF-8''budget%20v2.ods` (RFC 6266): the file's name." }),
            None,
        ),
        ("header", "Idempotency-Key") => set_schema(
            json!({
                "type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY,
                "pattern": "^[\\x20-\\x7E]+$",
                "description": "Printable ASCII, 1 to 200 characters; a UUID is a good key.",
            }),
            None,
        ),
        _ => {}
    }
}

/// The headers answers carry, and 503 wherever the database is read.
fn responses(doc: &mut Value) {
    let retry_after = json!({
        "description": "Seconds to wait before trying again.",
        "schema": { "type": "integer", "minimum": 0 }
    });
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (_, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (_, op) in item.iter_mut() {
            let pages = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p.get("name").and_then(Value::as_str) == Some("cursor"))
                });
            let has_body = op.get("requestBody").is_some();
            let operation = op
                .get("operationId")
                .and_then(Value::as_str)
                .map(str::to_string);
            let operation = operation.as_deref();
            let downloads = matches!(
                operation,
                Some("getPiece" | "getPieceVersion" | "getArrivalAttachment")
            );
            let ranges = matches!(operation, Some("getPiece" | "getPieceVersion"));
            let files = downloads || operation == Some("getArrivalMessage");
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            // The query rule holds on every route (`refuse_undeclared_query`).
            responses.entry("400").or_insert_with(|| {
                problem_response("`invalid_parameter`: an unknown or repeated query parameter, or a value outside the document's.")
            });
            // Every operation authenticates its caller against the
            // database: each may find it away.
            responses.entry("503").or_insert_with(|| {
                problem_response(
                    "The database is unavailable; try again after `Retry-After` seconds.",
                )
            });
            if let Some(r) = responses.get_mut("503").and_then(Value::as_object_mut) {
                headers_of(r).insert("Retry-After".into(), retry_after.clone());
            }
            if pages {
                responses.entry("422").or_insert_with(|| {
                    problem_response("`invalid_cursor`: a cursor of the documented shape that the service did not give, or one of a list in another order.")
                });
            }
            if has_body {
                responses.entry("413").or_insert_with(|| {
                    problem_response("`body_too_large`: a JSON body over 64 KiB, or a file over the service's `--max-piece-size`.")
                });
            }
            // A file is answered with its own media type, whatever it is.
            if downloads {
                for status in ["200", "206"] {
                    if let Some(Value::Object(r)) = responses.get_mut(status) {
                        r.insert(
                            "content".into(),
                            json!({ "*/*": { "schema": { "type": "string", "format": "binary" } } }),
                        );
                    }
                }
            }
            // A file's headers: its digest as `ETag` (`If-None-Match` with
            // it is 304), its name, and for a pièce one range of bytes.
            if files {
                for (status, names) in [
                    ("200", &["ETag", "Content-Disposition", "Accept-Ranges"][..]),
                    ("206", &["ETag", "Content-Disposition", "Content-Range"][..]),
                    ("304", &["ETag"][..]),
                    ("416", &["Content-Range"][..]),
                ] {
                    let Some(r) = responses.get_mut(status).and_then(Value::as_object_mut) else {
                        continue;
                    };
                    for name in names {
                        if *name == "Accept-Ranges" && !ranges {
                            continue;
                        }
                        headers_of(r).insert((*name).into(), file_header(name));
                    }
                }
            }
            if matches!(operation, Some("exportCsv" | "exportXlsx")) {
                if let Some(r) = responses.get_mut("200").and_then(Value::as_object_mut) {
                    headers_of(r).insert(
                        "Content-Disposition".into(),
                        file_header("Content-Disposition"),
                    );
                }
            }
            if let Some(r) = responses.get_mut("201").and_then(Value::as_object_mut) {
                headers_of(r).insert(
                    "Location".into(),
                    json!({ "description": "The address of what was created.", "schema": { "type": "string" } }),
                );
            }
        }
    }
}

/// The headers of an answer that is a file.
fn file_header(name: &str) -> Value {
    let (description, schema) = match name {
        "ETag" => (
            "The file's SHA-256, quoted: send it back in `If-None-Match`.",
            json!({ "type": "string", "pattern": "^\"[0-9a-f]{64}\"$" }),
        ),
        "Content-Disposition" => (
            "`attachment` with the file's name (RFC 6266).",
            json!({ "type": "string" }),
        ),
        "Accept-Ranges" => (
            "`bytes`: one `Range` is answered 206.",
            json!({ "type": "string", "enum": ["bytes"] }),
        ),
        _ => (
            "The bytes sent and the file's size (`bytes 0-99/1234`; `bytes */1234` on a 416).",
            json!({ "type": "string" }),
        ),
    };
    json!({ "description": description, "schema": schema })
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": schema_ref("Problem") } }
    })
}

fn headers_of(response: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let headers = response.entry("headers").or_insert_with(|| json!({}));
    if !headers.is_object() {
        *headers = json!({});
    }
    headers.as_object_mut().expect("made an object above")
}

/// Requests that pass the campaign's rules too: a deposit inside the first
/// wave, a transition of a dossier just deposited. Generators start from
/// them, and an integrator copies them.
fn examples(doc: &mut Value, def: &Definition, misses: &mut Vec<String>) {
    let first_wave_day = def
        .campaign()
        .waves
        .first()
        .map_or(def.campaign().opens_on, |w| w.closes_on)
        .pred_opt()
        .unwrap_or(def.campaign().opens_on);
    let received_at = format!("{first_wave_day}T09:30:00Z");
    let programmes: Vec<&str> = def.programmes().iter().map(|p| p.id.as_str()).collect();
    let pieces: Vec<Value> = def
        .pieces()
        .iter()
        .map(|p| json!({ "kind": p.id.as_str(), "filename": format!("{}.pdf", p.id) }))
        .collect();
    let deposit = json!({
        "commune": "Nevers",
        "code_insee": "58194",
        "porteur": { "nom": "Ville de Nevers", "email": "mairie@ville-nevers.fr" },
        "programmes": programmes,
        "received_at": received_at,
        "pieces": pieces,
        "doublon_confirme": true,
    });
    let mut transition = json!({ "expected_version": 1 });
    if let Some(first) = def.actions().iter().find(|a| a.next_step) {
        transition["action"] = json!(first.id.as_str());
        if let (true, Some(v)) = (first.verdict, def.verdicts().first()) {
            transition["verdict"] = json!(v.id.as_str());
        }
    }
    // Named examples on the request: the Nièvre's first communes, each a
    // valid deposit of its own (a generator sends each once); the JSON ones
    // declare their pièces, the form's send both files, so that the
    // transition's example (the next step) holds on those.
    let mut json_named = Map::new();
    let mut form_named = Map::new();
    let nievre = ami_core::communes::communes()
        .iter()
        .filter(|c| c.departement == "58");
    for (i, c) in nievre.take(2 * DEPOSIT_EXAMPLES).enumerate() {
        let mut body = deposit.clone();
        body["commune"] = json!(c.name);
        body["code_insee"] = json!(c.code);
        body["porteur"] = json!({ "nom": format!("Commune de {}", c.name), "email": null });
        let summary = format!("{} ({})", c.name, c.code);
        if i < DEPOSIT_EXAMPLES {
            json_named.insert(
                format!("depot_{}", c.code),
                json!({ "summary": summary, "value": body }),
            );
        } else {
            if let Some(b) = body.as_object_mut() {
                b.remove("pieces");
            }
            let mut form = json!({ "dossier": body });
            for p in def.pieces() {
                form[p.id.as_str()] = json!(ONE_PAGE_PDF);
            }
            form_named.insert(
                format!("depot_{}_avec_fichiers", c.code),
                json!({ "summary": format!("{summary}, avec ses fichiers"), "value": form }),
            );
        }
    }
    put(
        doc,
        "/paths/~1dossiers/post/requestBody/content/application~1json",
        "examples",
        Value::Object(json_named),
        misses,
    );
    put(
        doc,
        "/paths/~1dossiers/post/requestBody/content/multipart~1form-data",
        "examples",
        Value::Object(form_named),
        misses,
    );
    put(
        doc,
        "/paths/~1dossiers/post/requestBody/content/multipart~1form-data",
        "encoding",
        json!({ "dossier": { "contentType": "application/json" } }),
        misses,
    );
    put(
        doc,
        "/components/schemas/NewDossierBody",
        "examples",
        json!([deposit]),
        misses,
    );
    put(
        doc,
        "/components/schemas/TransitionBody",
        "examples",
        json!([transition]),
        misses,
    );
    put(
        doc,
        "/components/schemas/NewDossierBody/properties/received_at",
        "examples",
        json!([received_at]),
        misses,
    );
}

/// Files are bytes: utoipa writes `Vec<u8>` as an array of integers, which
/// is the JSON of a file, not the file.
fn binary_bodies(doc: &mut Value) {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                let is_bytes = map.get("type") == Some(&json!("array"))
                    && map
                        .get("items")
                        .and_then(|i| i.get("type"))
                        .is_some_and(|t| t == "integer")
                    && map
                        .get("items")
                        .and_then(|i| i.get("format"))
                        .is_some_and(|f| f == "int32");
                if is_bytes {
                    map.clear();
                    map.insert("type".into(), json!("string"));
                    map.insert("format".into(), json!("binary"));
                    return;
                }
                for (_, child) in map.iter_mut() {
                    walk(child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    if let Some(paths) = doc.get_mut("paths") {
        walk(paths);
    }
}

/// The smallest file every pièce of the default definition accepts: a
/// one-page PDF (the type is read from the first bytes). The deposit forms'
/// examples and the links that send a pièce carry it, so that a client
/// copying them (a stateful tester) sends a file the service takes.
const ONE_PAGE_PDF: &str = "%PDF-1.4\n%ami\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

/// What a client does next with a dossier it has just read or written.
fn dossier_links(def: &Definition, today: NaiveDate) -> Value {
    let due_on = today + chrono::Days::new(COMPLEMENT_DAYS);
    let id = "$response.body#/id";
    let version = "$response.body#/version";
    let mut links = serde_json::Map::new();
    links.insert(
        "GetDossier".into(),
        json!({
            "operationId": "getDossier",
            "parameters": { "id": id },
            "description": "The dossier, as it is now.",
        }),
    );
    links.insert(
        "GetHistory".into(),
        json!({
            "operationId": "getHistory",
            "parameters": { "id": id },
            "description": "Its journal.",
        }),
    );
    links.insert(
        "TakeAction".into(),
        json!({
            "operationId": "takeAction",
            "parameters": { "id": id },
            "description": "An action on the dossier: `next_step` names the one that moves it on, `version` is the `expected_version` to send.",
        }),
    );
    // The step that moves the dossier on: `next_step` is only there when it
    // is the caller's to take now (pièces received, the right agency).
    if let Some(verdict) = def.verdicts().first() {
        links.insert(
            "TakeNextStep".into(),
            json!({
                "operationId": "takeAction",
                "parameters": { "id": id },
                "requestBody": {
                    "action": "$response.body#/next_step",
                    "expected_version": version,
                    "verdict": verdict.id.as_str(),
                },
                "description": format!("Takes the dossier's `next_step` with the verdict « {} », at the version read: for the steps that take a verdict (the instruction, the avis); a step that takes none, the decision, refuses it (422 `verdict_not_expected`) and goes through `TakeAction`. A dossier with no step for the caller has no `next_step`: the link does not apply.", verdict.label),
            }),
        );
    }
    for piece in def.pieces() {
        links.insert(
            format!("Put_{}", piece.id),
            json!({
                "operationId": "putPiece",
                "parameters": {
                    "id": id,
                    "kind": piece.id.as_str(),
                    // The version once: a client that also sent `If-Match`
                    // would have to send the same one.
                    "expected_version": version,
                },
                "requestBody": ONE_PAGE_PDF,
                "description": format!("Sends the file of its « {} » (here a one-page PDF), at the version read.", piece.label),
            }),
        );
    }
    if let Some(ask) = def
        .actions()
        .iter()
        .find(|a| a.effect == ami_core::Effect::RequestPieces)
    {
        let first = def.pieces().first().map_or("", |p| p.id.as_str());
        links.insert(
            "RequestPieces".into(),
            json!({
                "operationId": "takeAction",
                "parameters": { "id": id },
                "requestBody": {
                    "action": ask.id.as_str(),
                    "expected_version": version,
                    "pieces": [first],
                    "due_on": due_on.to_string(),
                    "motivation": "Pièce illisible : merci de la renvoyer.",
                },
                "description": format!("« {} »: asks the town for a pièce, due in {COMPLEMENT_DAYS} days.", ask.label),
            }),
        );
    }
    Value::Object(links)
}

/// From each answer that carries a dossier to what a client does next with
/// it: enough for a client that only follows links to deposit, send both
/// pièces and take the next step.
fn links(doc: &mut Value, def: &Definition, today: NaiveDate, misses: &mut Vec<String>) {
    let dossier_links = dossier_links(def, today);
    for (pointer, status) in [
        ("/paths/~1dossiers/post/responses", "201"),
        ("/paths/~1dossiers~1{id}~1transitions/post/responses", "200"),
        ("/paths/~1dossiers~1{id}/get/responses", "200"),
        (
            "/paths/~1dossiers~1{id}~1pieces~1{kind}/put/responses",
            "200",
        ),
    ] {
        match doc
            .pointer_mut(&format!("{pointer}/{status}"))
            .and_then(Value::as_object_mut)
        {
            Some(r) => {
                r.insert("links".into(), dossier_links.clone());
            }
            None => misses.push(format!("{pointer}/{status}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refinement_lands() {
        let (_, misses) = build(
            &Definition::ami2(),
            NaiveDate::from_ymd_opt(2020, 10, 1).expect("a date"),
        );
        assert!(
            misses.is_empty(),
            "refinements that found nothing: {misses:#?}"
        );
    }

    #[test]
    fn vocabularies_are_the_definitions() {
        let def = Definition::ami2();
        let (doc, _) = build(&def, NaiveDate::from_ymd_opt(2020, 10, 1).expect("a date"));
        let values = |name: &str| -> Vec<String> {
            doc.pointer(&format!("/components/schemas/{name}/enum"))
                .and_then(Value::as_array)
                .unwrap_or_else(|| panic!("{name} has no enum"))
                .iter()
                .map(|v| v.to_string().trim_matches('"').to_string())
                .collect()
        };
        let states: Vec<String> = def.states().iter().map(|s| s.id.to_string()).collect();
        assert_eq!(values("State"), states);
        assert!(values("TransitionAction").iter().all(|a| a != "deposer"));
        assert!(values("Action").iter().any(|a| a == "deposer"));
        assert_eq!(values("Wave"), ["1", "2", "3"]);
        assert_eq!(values("Programme"), ["acv", "ti"]);
    }

    #[test]
    fn the_text_patterns_refuse_what_the_checks_refuse() {
        let h = hidden_class(&[]);
        assert!(h.starts_with("\\u0000-\\u001F\\u007F-\\u009F"), "{h}");
        let free = hidden_class(&['\t', '\n', '\r']);
        assert!(
            free.starts_with("\\u0000-\\u0008\\u000B-\\u000C\\u000E-\\u001F"),
            "{free}"
        );
    }
}
