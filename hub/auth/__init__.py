"""Authentication: passwords, login sessions with rotating refresh tokens, access tokens, MFA."""
