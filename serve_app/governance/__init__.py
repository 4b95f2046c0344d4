"""API keys: keys.py (who a request is, what it may call), quotas.py (a key's limits and
counts), governor.py (the deployment that holds keys and counts for every ingress
replica), admission.py (an ingress replica's side), routes.py (`/api/keys`)."""
