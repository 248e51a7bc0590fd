"""The cluster CA: root certificate, node certificates, join tokens, credentials and renewal.

Modules: `rootca` (create/load the root, sign CSRs), `tokens` (join tokens), `certstore` (node
credentials on disk), `security` (live credentials for servers and clients), `server` (CA and
NodeCA servicers), `join` (joining a cluster), `renewer` (certificate renewal), `bootstrap` (a new
cluster's CA), `peer` (the authenticated caller of an RPC).
"""
