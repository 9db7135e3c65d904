"""The bare FastAPI endpoint `POST /v1/contacts` is compared with: it validates the same kind of body
and answers 201, with no database, no bus and no middleware. Served by uvicorn in a process of its own:
`uvicorn services.bench.baseline_app:app`."""

from __future__ import annotations

from fastapi import FastAPI, status
from pydantic import BaseModel, EmailStr

app = FastAPI(title="bare endpoint")


class ContactBody(BaseModel):
    email: EmailStr
    first_name: str | None = None
    source: str | None = None


@app.post("/v1/contacts", status_code=status.HTTP_201_CREATED)
async def create_contact(body: ContactBody) -> ContactBody:
    return body


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
