"""gRPC plumbing: mTLS servers and channels, per-RPC authorisation, error status mapping.

Modules: `server` (cluster, join and control-socket servers), `channel` (client channels),
`auth` (peer identity, role table, AuthInterceptor, current_peer), `status` (errors <-> codes),
`backoff` (retry delays), `routing` (leader-only methods, method shapes), `identity` (forwarded
caller metadata), `forward` (follower-to-leader forwarding interceptor).
"""
