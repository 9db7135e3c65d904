"""The bare FastAPI endpoints `POST /v1/contacts`, `POST /v1/track`, `POST /v1/postbacks` and
`GET /r/{code}` are compared with: each validates the same kind of body (the track call and the
postback with the product's own models) and answers, with no database, no bus and no middleware.
Served by uvicorn in a process of its own:
`uvicorn services.bench.baseline_app:app`."""

from __future__ import annotations

from fastapi import FastAPI, Response, status
from pydantic import BaseModel, EmailStr

from services.journeys.tracking.schemas import Accepted, TrackCall
from services.referrals.conversions.schemas import PostbackIn

app = FastAPI(title="bare endpoint")


class ContactBody(BaseModel):
    email: EmailStr
    first_name: str | None = None
    source: str | None = None


@app.post("/v1/contacts", status_code=status.HTTP_201_CREATED)
async def create_contact(body: ContactBody) -> ContactBody:
    return body


@app.post("/v1/track")
async def track(body: TrackCall) -> Accepted:
    return Accepted()


@app.get("/r/{code}")
async def redirect(code: str) -> Response:
    """A bare 302: what `/r/{code}` is compared with (the product also records the click)."""
    return Response(
        status_code=status.HTTP_302_FOUND, headers={"Location": f"https://shop.example.com/?ref={code}"}
    )


@app.post("/v1/postbacks", status_code=status.HTTP_201_CREATED)
async def postback(body: PostbackIn) -> PostbackIn:
    return body


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
