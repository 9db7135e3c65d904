"""The whole stream's event contract: the AsyncAPI document of every service, and the event schemas.

`shared.events.asyncapi` builds it but may not import the services; this module hands them in. `crm
asyncapi` writes the result to `docs/` and, with `--check`, says whether the committed files are current.
"""

from __future__ import annotations

from services.registry import SERVICES
from shared.events.asyncapi import DOCUMENT_FILE, JSON, build_document, contract_files


def document() -> JSON:
    return build_document(SERVICES.values())


def files(document_file: str = DOCUMENT_FILE) -> dict[str, str]:
    """Every file of the contract by its path under the docs folder: the document, the current schemas."""
    return contract_files(document(), document_file=document_file)
