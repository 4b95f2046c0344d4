"""Who goes first when a model is full: priority bands and token-fair order per API key.

The order is kept where requests for a model meet, in each of its replicas (queue.py),
so it is the cluster's order, not one ingress replica's: every ingress replica's
requests for a model land in the same few replicas' queues.
"""
