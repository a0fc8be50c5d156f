"""user-service: accounts, sign-up and access tokens."""
