"""HTTP plumbing that every route shares and no route writes: the error boundary and
body limit (boundary.py), the request's context (context.py) and the access log
(access_log.py). It knows no dialect: each dialect's route class says how its errors
look."""
