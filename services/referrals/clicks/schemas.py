import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ClickRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="The click id: appended to the destination as `crm_click_id`, and a cookie.")
    visitor_id: str = Field(description="The `crm_visitor` cookie: one browser's clicks share it.")
    link_id: uuid.UUID
    code: str
    program_id: uuid.UUID
    affiliate_id: uuid.UUID
    clicked_at: datetime
    ip_hash: str | None = Field(description="Keyed HMAC-SHA256 of the client address.")
    user_agent: str | None
    referrer: str | None
    landing_url: str = Field(description="Where the visitor was sent: destination, UTM tags, click id.")
    is_bot: bool = Field(description="A known crawler or link checker: recorded, never counted or credited.")
    contact_id: uuid.UUID | None
    recorded_at: datetime = Field(description="When the click reached the database (after the redirect).")
