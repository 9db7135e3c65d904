"""API keys: who is calling, and what they may do. The domain side; `shared.web.auth` is the edge."""
