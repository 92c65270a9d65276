"""The API's OpenAPI 3 description: the one source of the request rules, served at ``/openapi.json``.

``app/openapi.json`` is written by hand and kept next to the code; tests/test_openapi.py checks that
it describes every route and only routes that exist, and the fuzz test holds responses to it.
At start the app puts this server's limits into it (the message length it is configured with, the
batch size, the session id length, and every other limit below that the code checks with), serves
that, and compiles the schemas that app/payload.py checks request fields against (jsonschema-rs),
so the description and the checks cannot drift. tests/test_openapi.py holds the file's own numbers
to the ones served with the default settings, so the file read alone does not mislead either.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import jsonschema_rs
from flask import Blueprint, Flask, Response, current_app

from chatbot.data.edit import MAX_PHRASE_CHARS, MAX_RESPONSE_CHARS
from chatbot.dialogue.turn import RANKING_SIZE
from chatbot.learning.message_log import MAX_SESSION_CHARS

bp = Blueprint("openapi", __name__)
SPEC_FILE = "openapi.json"
MAX_BATCH = 256  # texts in one /api/v1/parse request
# Characters of a batch once normalised: the work of one request (its worst case is measured by
# tests/test_api.py), so that a few batches cannot starve every chat (256 texts of 39 characters).
MAX_BATCH_CHARS = 10_000
SESSION_ID_CHARACTERS = "A-Za-z0-9._:-"
# A session id as the served SessionId schema describes it (for ids the server makes, such as channels').
SESSION_ID_PATTERN = f"^[{SESSION_ID_CHARACTERS}]{{1,{MAX_SESSION_CHARS}}}$"
MAX_SENDER_CHARS = 256  # a Rasa REST channel's sender id (app/channels/rest.py)
OPERATOR_NAME = r"[\w .'-]{1,64}"  # an operator's name, as the console shows it (app/console.py)
INBOX_PAGE = 200  # review groups listed at once; the page says how many more there are (app/review.py)
MAX_REVIEW_DAYS = 3650  # the longest window the review inbox looks back over (app/review.py)


@dataclass(frozen=True)
class Contract:
    """The served description and the compiled schemas of the request fields it describes."""

    description: bytes  # /openapi.json's body
    schemas: dict[str, dict[str, Any]]  # components/schemas, with this server's limits
    validators: dict[str, Any]  # schema name -> jsonschema_rs validator, for the request fields

    def schema(self, name: str) -> dict[str, Any]:
        """Return a component schema as served."""
        return self.schemas[name]


REQUEST_FIELDS = (
    "Message",
    "Texts",
    "SessionId",
    "TimeZone",
)  # the schemas app/payload.py checks fields with


def init_app(app: Flask) -> None:
    """Describe the API with this app's limits and compile the request checks, at start."""
    build_contract(app.config["MAX_MESSAGE_CHARS"])  # a broken description stops the start
    app.register_blueprint(bp)


@functools.lru_cache(maxsize=8)
def build_contract(max_message_chars: int) -> Contract:
    """Return the hand-written description with the limits filled in, and its compiled checks."""
    spec = json.loads(files("app").joinpath(SPEC_FILE).read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    schemas["Message"]["maxLength"] = max_message_chars
    schemas["Message"]["description"] = (
        f"A message: not only whitespace, at most {max_message_chars} characters "
        "(CHATBOT_MAX_MESSAGE_CHARS), counted before and after NFKC normalisation."
    )
    schemas["Texts"]["maxItems"] = schemas["ParseBatch"]["properties"]["results"]["maxItems"] = MAX_BATCH
    schemas["Texts"]["description"] = (
        f"A batch: 1 to {MAX_BATCH} messages, and at most {MAX_BATCH_CHARS:,} characters in all once "
        "normalised (NFKC)."
    )
    schemas["SessionId"]["pattern"] = SESSION_ID_PATTERN
    _fill_limits(spec)
    components = {"components": {"schemas": copy.deepcopy(schemas)}}
    validators = {
        name: jsonschema_rs.validator_for({**components, "$ref": f"#/components/schemas/{name}"})
        for name in REQUEST_FIELDS
    }
    return Contract(json.dumps(spec, indent=2).encode(), schemas, validators)


def _fill_limits(spec: dict[str, Any]) -> None:
    """Write the fixed limits the code checks with into the description."""
    schemas = spec["components"]["schemas"]
    schemas["ParseResult"]["properties"]["ranking"]["maxItems"] = RANKING_SIZE
    schemas["ReviewDecision"]["properties"]["phrase"]["maxLength"] = MAX_PHRASE_CHARS
    schemas["ReviewDecision"]["properties"]["response"]["maxLength"] = MAX_RESPONSE_CHARS
    schemas["ReviewInbox"]["properties"]["groups"]["maxItems"] = INBOX_PAGE
    schemas["OperatorAction"]["properties"]["operator"]["pattern"] = f"^{OPERATOR_NAME}$"
    schemas["RasaMessage"]["properties"]["sender"]["maxLength"] = MAX_SENDER_CHARS
    for operations in spec["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "days":
                    parameter["schema"]["maximum"] = MAX_REVIEW_DAYS


def contract() -> Contract:
    """Return the contract for the limits of the app handling this request (built once per limit)."""
    return build_contract(current_app.config["MAX_MESSAGE_CHARS"])


@bp.get("/openapi.json")
def openapi() -> Response:
    """Serve the OpenAPI description, with this server's limits."""
    return Response(contract().description, mimetype="application/json")
