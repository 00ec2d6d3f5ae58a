"""Drives one dossier from deposit to lauréat with a client generated from
the service's OpenAPI document by openapi-python-client, typed errors
included. Run by scripts/generated-client.sh, which starts the service,
generates the package `ami_client` and sets:

  AMI_BASE_URL         http://127.0.0.1:PORT/api/v1
  AMI_OPENAPI          the document the client was generated from
  AMI_EXAMPLES         docs/examples (a PDF and an xlsx for the pièces)
  AMI_DAR_AGENT, AMI_DAR_RESPONSABLE, AMI_ACV_AGENT, AMI_TI_AGENT  tokens

Only the generated functions and models talk to the service (no raw HTTP).
The operations are found by method and path in the generated package, not
by their Python names, so renaming an operationId does not break this
test; a missing operation does. Stops at the first failure; also lists
what the document leaves untyped or types wrong as the client shows it
(`defect`), which fails the run too unless ALLOW_TYPE_DEFECTS=1. Exits
non-zero on either.
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib
import json
import os
import pkgutil
import re
import sys
import typing
import uuid
from pathlib import Path

import attrs

import ami_client
import ami_client.api
from ami_client import AuthenticatedClient
from ami_client import models as M
from ami_client.types import File, Response, Unset

BASE = os.environ["AMI_BASE_URL"]
DOC = json.loads(Path(os.environ["AMI_OPENAPI"]).read_text())
EXAMPLES = Path(os.environ["AMI_EXAMPLES"])

STEPS: list[str] = []
NOTES: list[str] = []
# What the document leaves untyped or types wrong, as the generated client
# shows it: each fails the run unless ALLOW_TYPE_DEFECTS=1.
DEFECTS: list[str] = []
ALLOW_TYPE_DEFECTS = os.environ.get("ALLOW_TYPE_DEFECTS") == "1"


def defect(what: str) -> None:
    DEFECTS.append(what)


class Failure(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failure(what)


def client(token_var: str) -> AuthenticatedClient:
    return AuthenticatedClient(base_url=BASE, token=os.environ[token_var], timeout=30.0)


# --- The generated operations, by method and path -------------------------

def _operations() -> dict[tuple[str, str], typing.Any]:
    found = {}
    for info in pkgutil.walk_packages(ami_client.api.__path__, "ami_client.api."):
        if info.ispkg:
            continue
        module = importlib.import_module(info.name)
        source = Path(module.__file__).read_text()
        m = re.search(r'"method":\s*"(\w+)",\s*"url":\s*f?"([^"]+)"', source)
        if m and hasattr(module, "sync_detailed"):
            path = re.sub(r"\{[^}]*\}", "{}", m.group(2))
            found[(m.group(1).upper(), path)] = module
    return found


OPS = _operations()


def op(method: str, path: str):
    key = (method, re.sub(r"\{[^}]*\}", "{}", path))
    check(key in OPS, f"the generated client has no operation {method} {path} (has: {sorted(OPS)})")
    return OPS[key]


# --- Types: what the document declares, what the generator made -----------

def schema(name: str) -> dict:
    return DOC.get("components", {}).get("schemas", {}).get(name, {})


def declares_enum(prop: dict) -> bool:
    """Whether a property schema is an enum (directly, through $ref, or in a
    oneOf/anyOf of consts)."""
    if "$ref" in prop:
        return declares_enum(schema(prop["$ref"].rsplit("/", 1)[-1]))
    if "enum" in prop or "const" in prop:
        return True
    for key in ("oneOf", "anyOf", "allOf"):
        alts = [a for a in prop.get(key, []) if a.get("type") != "null"]
        if alts and all(declares_enum(a) for a in alts):
            return True
    return False


def field_type(cls: type, field: str):
    """The generated annotation of a model's field, Unset and None aside."""
    hints = typing.get_type_hints(cls, vars(M) | vars(sys.modules[cls.__module__]))
    t = hints[field]
    args = [a for a in hint_args(t) if a not in (Unset, type(None))]
    return args[0] if len(args) == 1 else t


def value_for(cls: type, field: str, value):
    """`value` as the generated model wants it for `field`: an Enum member if
    the generator made an Enum, the value itself otherwise."""
    t = field_type(cls, field)
    if typing.get_origin(t) in (list, typing.List):
        inner = typing.get_args(t)[0]
        if isinstance(inner, type) and issubclass(inner, enum.Enum):
            return [inner(v) for v in value]
        return list(value)
    if isinstance(t, type) and issubclass(t, enum.Enum):
        return t(value)
    return value


def plain(v):
    return v.value if isinstance(v, enum.Enum) else v


def check_typed(instance, schema_name: str, fields: list[str]) -> None:
    """For each field the document declares as an enum, the generated model
    must give an Enum member (or a str Literal value); a field the document
    leaves a plain string is a defect."""
    props = schema(schema_name).get("properties", {})
    for f in fields:
        v = getattr(instance, f)
        vs = [x for x in (v if isinstance(v, list) else [v]) if x is not None and not isinstance(x, Unset)]
        prop = props.get(f, {})
        if "items" in prop:
            prop = prop["items"]
        elif "items" in (alts := [a for a in prop.get("oneOf", prop.get("anyOf", [])) if "items" in a] or [{}])[0]:
            prop = alts[0]["items"]
        if declares_enum(prop):
            t = field_type(type(instance), f)
            if typing.get_origin(t) in (list, typing.List):
                t = typing.get_args(t)[0]
            if typing.get_origin(t) is typing.Literal:
                check(all(x in typing.get_args(t) for x in vs), f"{schema_name}.{f}: {vs} outside {t}")
            elif typing.get_origin(t) is typing.Union:
                # An enum or named constants (a history's `action`: the
                # workflow's actions or `migration`): every member typed.
                members = typing.get_args(t)
                typed = all(
                    (isinstance(m, type) and issubclass(m, enum.Enum)) or typing.get_origin(m) is typing.Literal
                    for m in members
                )
                check(typed, f"{schema_name}.{f} is an enum in the document but {t} in the client")
            else:
                check(isinstance(t, type) and issubclass(t, enum.Enum), f"{schema_name}.{f} is an enum in the document but {t} in the client")
                check(all(isinstance(x, t) for x in vs), f"{schema_name}.{f}: {vs!r} not {t.__name__} members")
            NOTES.append(f"{schema_name}.{f}: typed {getattr(t, '__name__', t)}")
        else:
            defect(f"{schema_name}.{f} is a plain string in the document (no enum): {props.get(f)}")


def hint_args(t) -> list:
    if typing.get_origin(t) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return list(typing.get_args(t))
    return [t]


def sync_hints(module) -> dict:
    return typing.get_type_hints(module.sync_detailed, vars(M) | vars(module))


def check_signatures() -> None:
    """The generated functions' types where the document decides them: file
    bodies and downloads are files (not `list[int]`), optional headers are
    strings (a header cannot be null: a client that sends None crashes)."""
    for path, item in DOC.get("paths", {}).items():
        for method, o in item.items():
            if not isinstance(o, dict):
                continue
            method = method.upper()
            module = OPS.get((method, re.sub(r"\{[^}]*\}", "{}", path)))
            if module is None:
                defect(f"{method} {path}: no operation in the generated client")
                continue
            hints = sync_hints(module)
            if list[int] in hint_args(hints.get("body")):
                defect(f"{method} {path}: the request body (a file) is typed list[int] in the client "
                       "(document: type array of integer under application/octet-stream; wants type string, "
                       "contentMediaType/format binary)")
            if any(list[int] in hint_args(a) for a in typing.get_args(hints.get("return"))):
                defect(f"{method} {path}: the answer (a file) is typed list[int] in the client "
                       "(document: type array of integer; wants type string, contentMediaType/format binary)")
            for prm in o.get("parameters", []):
                if prm.get("in") != "header":
                    continue
                py = re.sub(r"[^a-z0-9]+", "_", prm["name"].lower())
                t = hints.get(py, hints.get(py + "_"))
                if t is None:
                    defect(f"{method} {path}: header {prm['name']} missing from the client")
                elif type(None) in hint_args(t):
                    defect(f"{method} {path}: header {prm['name']} typed {t} (document: "
                           f"{json.dumps(prm.get('schema'))}; a header is a string, never null)")
    ids = [o.get("operationId") for item in DOC.get("paths", {}).values()
           for o in item.values() if isinstance(o, dict) and "responses" in o]
    for i in sorted({i for i in ids if ids.count(i) > 1 or i is None}, key=str):
        defect(f"operationId {i!r} on {ids.count(i)} operations (the generator names functions after it)")
    form = getattr(M, "DepositForm", None)
    if form is not None:
        hints = typing.get_type_hints(form, vars(M) | vars(sys.modules[form.__module__]))
        for f in ("dossier_candidature", "budget_previsionnel"):
            if f in hints and File not in hint_args(hints[f]):
                defect(f"DepositForm.{f} (a file) is typed {hints[f]} in the client, not File")


# --- The story --------------------------------------------------------------

def expect(resp: Response, status: int, model: type, what: str):
    check(resp.status_code == status,
          f"{what}: expected {status}, got {int(resp.status_code)}: {resp.content[:400]!r}")
    check(isinstance(resp.parsed, model),
          f"{what}: expected a {model.__name__}, parsed {type(resp.parsed).__name__}: {resp.content[:400]!r}")
    return resp.parsed


def expect_problem(resp: Response, status: int, code: str, what: str):
    p = expect(resp, status, M.Problem, what)
    check(plain(p.code) == code, f"{what}: expected code {code}, got {p.code!r}")
    check(p.status == status, f"{what}: Problem.status {p.status} != {status}")
    check(isinstance(p.detail, str) and p.detail, f"{what}: Problem.detail empty")
    STEPS.append(f"{what}: {status} {code} ({type(p).__name__})")
    return p


def transition(token_var: str, dossier, action: str, **extra):
    body_cls = M.TransitionBody
    kwargs = {"action": value_for(body_cls, "action", action), "expected_version": dossier.version}
    for k, v in extra.items():
        kwargs[k] = value_for(body_cls, k, v)
    resp = op("POST", "/dossiers/{id}/transitions").sync_detailed(
        dossier.id, client=client(token_var), body=body_cls(**kwargs))
    d = expect(resp, 200, M.DossierView, action)
    check(d.version == dossier.version + 1, f"{action}: version {d.version} after {dossier.version}")
    STEPS.append(f"{action} by {token_var}: {plain(dossier.state)} -> {plain(d.state)} (v{d.version})")
    return d


def value_for_param(module, name: str, value):
    """`value` as the generated function wants its parameter `name`."""
    for t in hint_args(sync_hints(module).get(name)):
        if isinstance(t, type) and issubclass(t, enum.Enum):
            return t(value)
    return value


def op_content(method: str, path: str) -> dict:
    return DOC["paths"][path][method.lower()].get("requestBody", {}).get("content", {})


def put_piece(dossier, kind: str, path: Path, media_type: str):
    module = op("PUT", "/dossiers/{id}/pieces/{kind}")
    kwargs = {
        "client": client("AMI_DAR_AGENT"),
        "body": File(payload=path.open("rb"), file_name=path.name, mime_type=media_type),
        "expected_version": dossier.version,
        "content_disposition": f"attachment; filename*=UTF-8''{path.name}",
    }
    # What the client would send (its own _get_kwargs; nothing is sent):
    # a file's Content-Type is its type or application/octet-stream.
    probe = {k: v for k, v in kwargs.items() if k != "client"}
    probe["body"] = File(payload=b"", file_name=path.name, mime_type=media_type)
    sent_type = module._get_kwargs(dossier.id, value_for_param(module, "kind", kind), **probe) \
        .get("headers", {}).get("Content-Type")
    # A generator's limitation more than the document's defect, and the
    # service reads the type from the content: noted, not failed.
    if sent_type not in (media_type, "application/octet-stream"):
        NOTES.append(f"PUT /dossiers/{{id}}/pieces/{{kind}}: the client sends {path.name} as Content-Type "
                     f"{sent_type} (the document lists {len(op_content('PUT', '/dossiers/{id}/pieces/{kind}'))} "
                     "media types for the body; the generator makes each a File and the last one listed wins)")
    resp = module.sync_detailed(dossier.id, value_for_param(module, "kind", kind), **kwargs)
    d = expect(resp, 200, M.DossierView, f"PUT pièce {kind}")
    check(d.version == dossier.version + 1, f"PUT pièce {kind}: version {d.version} after {dossier.version}")
    STEPS.append(f"pièce {kind} ({path.name}) by AMI_DAR_AGENT (v{d.version})")
    return d


def deposit_body(code_insee: str, commune: str, nom: str):
    B = M.NewDossierBody
    return B(
        commune=commune,
        code_insee=code_insee,
        porteur=M.PorteurBody(nom=nom, email="cnam@ville-nevers.fr"),
        programmes=value_for(B, "programmes", ["acv", "ti"]),
        received_at=dt.datetime(2020, 10, 1, 9, 30, tzinfo=dt.timezone.utc),
        pieces=[M.PieceBody(kind=value_for(M.PieceBody, "kind", "dossier_candidature"), filename="candidature.pdf"),
                M.PieceBody(kind=value_for(M.PieceBody, "kind", "budget_previsionnel"), filename="budget.xlsx")],
    )


def main() -> None:
    check_signatures()
    deposit = op("POST", "/dossiers")

    # The workflow, as the client types it.
    resp = op("GET", "/workflow").sync_detailed(client=client("AMI_DAR_AGENT"))
    check(resp.status_code == 200 and resp.parsed is not None, f"GET /workflow: {int(resp.status_code)}")
    declared = [f.name for f in attrs.fields(type(resp.parsed)) if f.name != "additional_properties"]
    if not declared:
        defect(f"GET /workflow: the answer is an untyped object in the client ({type(resp.parsed).__name__} "
               "has only additional_properties; document: {\"type\": \"object\"}, while components has Workflow)")
    STEPS.append(f"GET /workflow: {type(resp.parsed).__name__} ({len(declared)} typed fields)")

    # Deposit (DAR agent), with an Idempotency-Key; sent again with the same
    # key, the first answer comes back and nothing is appended.
    key = str(uuid.uuid4())
    resp = deposit.sync_detailed(client=client("AMI_DAR_AGENT"), idempotency_key=key,
                                 body=deposit_body("58194", "Nevers", "Ville de Nevers"))
    d = expect(resp, 201, M.DossierView, "deposit")
    again = expect(deposit.sync_detailed(client=client("AMI_DAR_AGENT"), idempotency_key=key,
                                         body=deposit_body("58194", "Nevers", "Ville de Nevers")),
                   201, M.DossierView, "deposit replayed")
    check(again.id == d.id and again.version == 1, f"replay: {again.id} v{again.version}, first {d.id}")
    check(isinstance(d.id, uuid.UUID), f"DossierView.id is {type(d.id).__name__}, not UUID")
    check(isinstance(d.received_at, dt.datetime), f"DossierView.received_at is {type(d.received_at).__name__}")
    check(plain(d.state) == "recu" and d.version == 1 and d.wave == 1, f"deposit: {plain(d.state)} v{d.version} wave {d.wave}")
    check(d.reference == "AMI2-V1-0001", f"deposit: reference {d.reference}")
    STEPS.append(f"deposit by AMI_DAR_AGENT: {d.reference}, {plain(d.state)} (v{d.version}); "
                 "replayed with its Idempotency-Key: the same dossier")
    check_typed(d, "DossierView", ["state", "programmes", "actions", "awaiting"])
    check_typed(deposit_body("58194", "Nevers", "Ville de Nevers"), "NewDossierBody", ["programmes"])
    check_typed(M.TransitionBody(action=value_for(M.TransitionBody, "action", "avis_ti"), expected_version=1,
                                 verdict=value_for(M.TransitionBody, "verdict", "favorable")),
                "TransitionBody", ["action", "verdict"])

    # Typed error: an unknown INSEE code (99999 is no commune).
    resp = deposit.sync_detailed(client=client("AMI_DAR_AGENT"),
                                 body=deposit_body("99999", "Nulle-Part", "Commune inconnue"))
    p = expect_problem(resp, 422, "commune_inconnue", "deposit with an unknown INSEE code")
    check(plain(p.field) == "code_insee", f"commune_inconnue: field {p.field!r}")

    # A deposit with its files in one request (multipart), when the client
    # types the form's files as files (check_signatures says when not).
    form = getattr(M, "DepositForm", None)
    hints = typing.get_type_hints(form, vars(M) | vars(sys.modules[form.__module__])) if form else {}
    kinds = ("dossier_candidature", "budget_previsionnel")
    if form is not None and all(File in hint_args(hints.get(k)) for k in kinds):
        files = {"dossier_candidature": (EXAMPLES / "candidature.pdf", "application/pdf"),
                 "budget_previsionnel": (EXAMPLES / "budget.xlsx",
                                         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")}
        # The JSON part: the deposit's model when the document types it so.
        json_part = M.NewDossierBody(
            commune="Bourges", code_insee="18033", porteur=M.PorteurBody(nom="Ville de Bourges"),
            programmes=value_for(M.NewDossierBody, "programmes", ["acv"]),
            received_at=dt.datetime(2020, 10, 2, 8, 0, tzinfo=dt.timezone.utc))
        if M.NewDossierBody not in hint_args(hints.get("dossier")):
            defect(f"DepositForm.dossier is typed {hints.get('dossier')} in the client, not NewDossierBody")
            json_part = json.dumps(json_part.to_dict())
        body = form(
            dossier=json_part,
            **{k: File(payload=path.open("rb"), file_name=path.name, mime_type=mt) for k, (path, mt) in files.items()})
        d2 = expect(deposit.sync_detailed(client=client("AMI_DAR_AGENT"), body=body), 201, M.DossierView,
                    "multipart deposit")
        check(sorted(plain(pc.kind) for pc in d2.pieces if pc.received) == sorted(kinds),
              f"multipart deposit: pièces {[(plain(pc.kind), pc.received) for pc in d2.pieces]}")
        STEPS.append(f"multipart deposit by AMI_DAR_AGENT: {d2.reference}, both files received (v{d2.version})")

    # The two files, then the instruction (DAR agent).
    d = put_piece(d, "dossier_candidature", EXAMPLES / "candidature.pdf", "application/pdf")
    d = put_piece(d, "budget_previsionnel", EXAMPLES / "budget.xlsx",
                  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    check(all(pc.received for pc in d.pieces), "pièces not all received")

    # Typed error: an ACV agent trying the DAR's action, before and after.
    tr = op("POST", "/dossiers/{id}/transitions")
    resp = tr.sync_detailed(d.id, client=client("AMI_ACV_AGENT"), body=M.TransitionBody(
        action=value_for(M.TransitionBody, "action", "instruire"), expected_version=d.version,
        verdict=value_for(M.TransitionBody, "verdict", "favorable")))
    expect_problem(resp, 403, "wrong_agency", "ACV agent tries instruire")

    d = transition("AMI_DAR_AGENT", d, "instruire", verdict="favorable")
    check(plain(d.state) == "instruit", f"after instruire: {plain(d.state)}")

    # Typed error: a stale expected_version (the version before instruire).
    resp = tr.sync_detailed(d.id, client=client("AMI_ACV_AGENT"), body=M.TransitionBody(
        action=value_for(M.TransitionBody, "action", "avis_acv"), expected_version=d.version - 1,
        verdict=value_for(M.TransitionBody, "verdict", "favorable")))
    p = expect_problem(resp, 409, "version_conflict", "stale expected_version")
    check(p.current_version == d.version, f"409: current_version {p.current_version!r}, expected {d.version}")

    # The ACV agent reads the budget before giving its avis.
    budget = (EXAMPLES / "budget.xlsx").read_bytes()
    resp = op("GET", "/dossiers/{id}/pieces/{kind}").sync_detailed(
        d.id, value_for_param(op("GET", "/dossiers/{id}/pieces/{kind}"), "kind", "budget_previsionnel"),
        client=client("AMI_ACV_AGENT"))
    check(resp.status_code == 200, f"download: {int(resp.status_code)} {resp.content[:200]!r}")
    got = resp.parsed.payload.read() if isinstance(resp.parsed, File) else resp.parsed
    check(got == budget, f"download: {len(got or b'')} bytes parsed, {len(budget)} sent")
    STEPS.append(f"budget downloaded by AMI_ACV_AGENT: {len(budget)} bytes, parsed as {type(resp.parsed).__name__}")

    # Each reader reads the dossier before acting: the version it sends is
    # the one it read.
    get = op("GET", "/dossiers/{id}")
    for who, action in (("AMI_ACV_AGENT", "avis_acv"), ("AMI_TI_AGENT", "avis_ti")):
        d = expect(get.sync_detailed(d.id, client=client(who)), 200, M.DossierView, f"{who} reads")
        check(action in [plain(a) for a in d.actions], f"{who}: actions {d.actions}")
        d = transition(who, d, action, verdict="favorable")

    # Four-eyes: a DAR responsable who did not instruct declares it lauréat.
    d = expect(get.sync_detailed(d.id, client=client("AMI_DAR_RESPONSABLE")), 200, M.DossierView, "responsable reads")
    check("declarer_laureat" in [plain(a) for a in d.actions], f"responsable: actions {d.actions}")
    d = transition("AMI_DAR_RESPONSABLE", d, "declarer_laureat")
    check(plain(d.state) == "laureat", f"final state {plain(d.state)}")
    check(d.actions == [], f"a lauréat dossier still offers {d.actions}")

    # The history has every step, in order.
    h = expect(op("GET", "/dossiers/{id}/history").sync_detailed(d.id, client=client("AMI_DAR_AGENT")),
               200, M.History, "history")
    actions = [plain(e.action) for e in h.events]
    want = ["deposer", "ajouter_piece", "ajouter_piece", "instruire", "avis_acv", "avis_ti", "declarer_laureat"]
    check(actions == want, f"history {actions}, expected {want}")
    check([e.seq for e in h.events] == list(range(1, len(want) + 1)), f"history seqs {[e.seq for e in h.events]}")
    check(plain(h.events[-1].to) == "laureat", f"last event to {h.events[-1].to!r}")
    check(h.events[3].actor.id != h.events[-1].actor.id, "four-eyes: the same person instructed and declared")
    STEPS.append(f"history: {len(h.events)} events, {' > '.join(actions)}")
    check_typed(h.events[-1], "HistoryItem", ["action", "to", "agency", "verdict"])
    check_typed(h.events[-1].actor, "ActorView", ["agency", "role"])
    check_typed(d.pieces[0], "PieceView", ["kind"])
    avis = d.avis.additional_properties if hasattr(d.avis, "additional_properties") else d.avis
    check(sorted(avis) == ["acv", "dar", "ti"], f"avis of {sorted(avis)}")
    check(isinstance(avis["acv"], M.AvisView), f"avis acv parsed as {type(avis['acv']).__name__}")
    check_typed(avis["acv"], "AvisView", ["action", "verdict"])
    print(f"final state: {plain(d.state)} (version {d.version}, {d.reference})")


if __name__ == "__main__":
    try:
        main()
        ok = True
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        ok = False
    except Exception:  # the generated client itself failed
        import traceback
        traceback.print_exc()
        print(f"FAIL: the generated client raised (above), after {len(STEPS)} steps", file=sys.stderr)
        ok = False
    print("steps done:")
    for s in STEPS:
        print(f"  - {s}")
    if NOTES:
        print("types and notes:")
        for n in NOTES:
            print(f"  - {n}")
    if DEFECTS:
        print(f"type defects of the document, as the generated client shows them ({len(DEFECTS)}):")
        for n in DEFECTS:
            print(f"  - {n}")
        if ALLOW_TYPE_DEFECTS:
            print("(ALLOW_TYPE_DEFECTS=1: not failing on them)")
        else:
            ok = False
    print(f"drive.py: {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)
