from forge_app_platform.db import Base, run_alembic

import user_service.models  # noqa: F401  (registers the tables on Base.metadata)

run_alembic(Base.metadata)
