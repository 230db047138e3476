"""Access control: API keys, tenants, fair sharing and the browser origin
rules (README "Access control")."""
