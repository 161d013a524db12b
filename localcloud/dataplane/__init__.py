"""The local cloud's data plane: what ECS, the load balancer and RDS would run, made real on one
machine from the state of the local AWS API."""
