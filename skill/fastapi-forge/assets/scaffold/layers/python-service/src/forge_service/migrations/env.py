from forge_app_platform.db import Base, run_alembic

import forge_app_platform.tables  # noqa: F401  (outbox, inbox)
import forge_service.models  # noqa: F401  (registers the tables on Base.metadata)

run_alembic(Base.metadata)
