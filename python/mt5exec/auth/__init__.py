"""Who may do what: principals and roles (``principal``), API keys (``keys``), JWTs
(``jwt``), the rules of every RPC (``rules``) and the check every call passes (``guard``).

A call carries ``authorization: Bearer <token>`` metadata: an API key (``mt5x_<id>_<secret>``)
or a JWT. ``mt5exec.server.handlers`` builds every handler of our services through the
guard, so no RPC or stream can be left out; health and reflection need no token (they
tell the API's schema and whether it serves, nothing of any instance).
"""
