"""Service chassis shared by the forge-app services.

Infrastructure only (app factory, auth check, database, broker, outbox, inbox); business
rules stay in the services. Contracts live in `forge_app_common`.
"""
