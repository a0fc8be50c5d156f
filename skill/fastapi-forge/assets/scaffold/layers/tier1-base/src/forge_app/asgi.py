"""The app object for `fastapi run` (entrypoint in pyproject's [tool.fastapi]).

fastapi-cli imports an app, it does not call factories, so this module builds one from the
environment when it is imported. Everything else imports `create_app` from `main`, which
reads no settings at import time.
"""

from .main import create_app

app = create_app()
