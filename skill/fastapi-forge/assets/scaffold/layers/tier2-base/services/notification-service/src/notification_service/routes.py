import uuid

from fastapi import APIRouter
from sqlalchemy import select

from forge_app_common import NotificationOut
from forge_app_platform.app import RuntimeDep
from forge_app_platform.auth import CurrentPrincipal

from .models import Notification

router = APIRouter(prefix="/notify", tags=["notifications"])


@router.get("/notifications")
async def my_notifications(
    principal: CurrentPrincipal, runtime: RuntimeDep, limit: int = 50
) -> list[NotificationOut]:
    async with runtime.db.sessions() as session:
        rows = await session.scalars(
            select(Notification)
            .where(Notification.user_id == uuid.UUID(principal.subject))
            .order_by(Notification.created_at.desc())
            .limit(min(max(limit, 1), 200))
        )
        return [NotificationOut.model_validate(row) for row in rows]
